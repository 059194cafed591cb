package org.livemig.bench.micro;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.livemig.memory.RamBlock;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.RamPageRecord;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/**
 * RAM page records, 1 MiB of pages at a time: writing them as the saver does (header, block
 * name once, then CONTINUE; the page queued without a copy and copied once into the sink) and
 * reading them as the loader does (header, name, the page copied into guest RAM), beside one
 * copy of the same MiB. The ratio is what framing costs on top of moving the bytes.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
public class PageRecordBench {
    static final int PAGES = 256;
    static final String BLOCK = "pc.ram";

    private Arena arena;
    private MemorySegment ram;
    private MemorySegment dst;
    private MigrationFile writer;
    private MigrationFile reader;
    private RamPageRecord record;

    @Setup
    public void setup() throws IOException {
        arena = Arena.ofConfined();
        ram = arena.allocate((long) PAGES * RamBlock.PAGE_SIZE, 4096);
        dst = arena.allocate(ram.byteSize(), 4096);
        SplittableRandom r = new SplittableRandom(1);
        for (long i = 0; i < ram.byteSize(); i += 8) {
            ram.set(ValueLayout.JAVA_LONG_UNALIGNED, i, r.nextLong());
        }
        dst.copyFrom(ram);
        writer = MigrationFile.forWriting(new Wire.Sink(4 << 20));
        MigrationFile encoded = MigrationFile.toMemory();
        writePages(encoded);
        encoded.flush();
        reader = MigrationFile.forReading(new Wire.Replay(encoded.toByteArray()));
        record = new RamPageRecord(RamBlock.PAGE_SIZE);
    }

    @TearDown
    public void tearDown() {
        arena.close();
    }

    private void writePages(MigrationFile f) throws IOException {
        for (int p = 0; p < PAGES; p++) {
            long off = (long) p * RamBlock.PAGE_SIZE;
            RamPageRecord.writePage(f, off, p == 0 ? BLOCK : null, ram, off, RamBlock.PAGE_SIZE);
        }
    }

    @Benchmark
    public long encode() throws IOException {
        writePages(writer);
        writer.flush();
        return writer.position();
    }

    @Benchmark
    public long decode() throws IOException {
        long sum = 0;
        for (int p = 0; p < PAGES; p++) {
            record.readHeader(reader);
            if (record.kind() != RamPageRecord.Kind.PAGE) {
                throw new IllegalStateException("not a page record at " + record.at());
            }
            if (!record.continues()) {
                sum += record.readBlockName(reader).length();
            }
            record.readPage(reader, dst, record.address());
            sum += record.address();
        }
        return sum;
    }

    /** One copy of the same MiB. */
    @Benchmark
    public MemorySegment baseline() {
        return dst.copyFrom(ram);
    }
}
