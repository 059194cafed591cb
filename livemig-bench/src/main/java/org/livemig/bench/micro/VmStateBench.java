package org.livemig.bench.micro;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.livemig.stream.MigrationFile;
import org.livemig.vmstate.VMStateDescription;
import org.livemig.vmstate.VmStateCodec;
import org.livemig.vmstate.VmValue;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

/**
 * The VMState codec on a device shaped like a multiqueue network card (scalars, 64 queues as a
 * struct array, a MAC table, a subsection): saving it (fields read through the description),
 * decoding it into a value tree off the BQL, and applying the tree to the device, beside copying
 * the same number of bytes. Per device, so the ratio says what describing state declaratively costs.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
public class VmStateBench {
    /** One queue's state. */
    public static final class Queue {
        long descAddr;
        long availAddr;
        long usedAddr;
        int lastAvail;
        int usedIdx;
        int size = 256;
        boolean enabled = true;
    }

    /** The device. */
    public static final class Nic {
        long features = 0x1_3000_0000L;
        int status = 0xf;
        int isr;
        int mtu = 1500;
        int queuePairs = 32;
        final byte[] mac = new byte[6];
        final byte[] macTable = new byte[64 * 6];
        final long[] vlans = new long[64];
        final List<Queue> queues = new ArrayList<>();
        long announceTimer = 1; // non-zero: the subsection goes
    }

    static final VMStateDescription<Queue> QUEUE = VMStateDescription.<Queue>builder("virtio-queue")
            .version(1)
            .uint64("desc", q -> q.descAddr, (q, v) -> q.descAddr = v)
            .uint64("avail", q -> q.availAddr, (q, v) -> q.availAddr = v)
            .uint64("used", q -> q.usedAddr, (q, v) -> q.usedAddr = v)
            .uint16("last_avail_idx", q -> q.lastAvail, (q, v) -> q.lastAvail = (int) v)
            .uint16("used_idx", q -> q.usedIdx, (q, v) -> q.usedIdx = (int) v)
            .uint16("num", q -> q.size, (q, v) -> q.size = (int) v)
            .bool("enabled", q -> q.enabled, (q, v) -> q.enabled = v)
            .build();

    static final VMStateDescription<Nic> ANNOUNCE = VMStateDescription.<Nic>builder("nic/announce")
            .version(1)
            .int64("announce_timer", n -> n.announceTimer, (n, v) -> n.announceTimer = v)
            .needed(n -> n.announceTimer != 0)
            .build();

    static final VMStateDescription<Nic> NIC = VMStateDescription.<Nic>builder("nic")
            .version(11).minimumVersion(11)
            .uint64("features", n -> n.features, (n, v) -> n.features = v)
            .uint8("status", n -> n.status, (n, v) -> n.status = (int) v)
            .uint8("isr", n -> n.isr, (n, v) -> n.isr = (int) v)
            .uint16("mtu", n -> n.mtu, (n, v) -> n.mtu = (int) v)
            .uint16("queue_pairs", n -> n.queuePairs, (n, v) -> n.queuePairs = (int) v)
            .buffer("mac", 6, n -> n.mac)
            .buffer("mac_table", 64 * 6, n -> n.macTable)
            .uint64Array("vlans", 64, n -> n.vlans)
            .structArray("vqs", 64, QUEUE, n -> n.queues)
            .subsection(ANNOUNCE)
            .build();

    private Nic nic;
    private Nic target;
    private MigrationFile writer;
    private MigrationFile reader;
    private VmValue.Struct staged;
    private byte[] encoded;
    private byte[] copy;

    @Setup
    public void setup() throws IOException {
        nic = newNic();
        target = newNic();
        for (int i = 0; i < 64; i++) {
            Queue q = nic.queues.get(i);
            q.descAddr = 0x1000L * i;
            q.availAddr = 0x1000L * i + 0x400;
            q.usedAddr = 0x1000L * i + 0x800;
            q.lastAvail = i;
            nic.vlans[i] = i * 31L;
        }
        MigrationFile m = MigrationFile.toMemory();
        VmStateCodec.save(m, NIC, nic, null);
        m.flush();
        encoded = m.toByteArray();
        copy = new byte[encoded.length];
        writer = MigrationFile.forWriting(new Wire.Sink(1 << 20));
        reader = MigrationFile.forReading(new Wire.Replay(encoded));
        staged = VmStateCodec.decode(MigrationFile.ofBytes(encoded), NIC, NIC.versionId());
    }

    private static Nic newNic() {
        Nic n = new Nic();
        for (int i = 0; i < 64; i++) {
            n.queues.add(new Queue());
        }
        return n;
    }

    @Benchmark
    public long save() throws IOException {
        VmStateCodec.save(writer, NIC, nic, null);
        writer.flush();
        return writer.position();
    }

    @Benchmark
    public VmValue.Struct decode() throws IOException {
        return VmStateCodec.decode(reader, NIC, NIC.versionId());
    }

    @Benchmark
    public Nic apply() throws Exception {
        VmStateCodec.apply(NIC, target, staged);
        return target;
    }

    /** Copying the same bytes the device's state takes on the wire. */
    @Benchmark
    public byte[] baseline() {
        System.arraycopy(encoded, 0, copy, 0, encoded.length);
        return copy;
    }
}
