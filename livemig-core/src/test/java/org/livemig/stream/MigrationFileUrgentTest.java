package org.livemig.stream;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Urgent bytes (postcopy without preempt: a requested page's section) go out ahead of the whole
 * units still queued in the write buffer, and never ahead of bytes already handed to the channel
 * or into the middle of a unit.
 */
class MigrationFileUrgentTest {
    private static final int PAGE = 4096;
    /** A unit here: an 8-byte id from the buffer, then a page of RAM (as a section of one page). */
    private static final int UNIT = 8 + PAGE;
    private static final long URGENT = 1L << 62;

    /** Pages whose first 8 bytes are their index. */
    private static MemorySegment pages(Arena arena, int count) {
        MemorySegment m = arena.allocate((long) count * PAGE, PAGE);
        for (int i = 0; i < count; i++) {
            m.set(ValueLayout.JAVA_LONG_UNALIGNED, (long) i * PAGE, i);
        }
        return m;
    }

    private static void unit(MigrationFile f, MemorySegment ram, long id, int page) throws IOException {
        f.putBe64(id);
        f.putRam(ram, (long) page * PAGE, PAGE);
    }

    /** The units the sink holds, as their ids, each checked against its page (an urgent one's in its low bits, else id % 1000). */
    private static List<Long> units(RecordingSink s) {
        ByteBuffer b = ByteBuffer.wrap(s.bytes.toByteArray()).order(ByteOrder.BIG_ENDIAN);
        assertThat(b.remaining() % UNIT).as("whole units only").isZero();
        List<Long> ids = new ArrayList<>();
        while (b.hasRemaining()) {
            long id = b.getLong();
            long page = b.order(ByteOrder.nativeOrder()).getLong(b.position());
            b.order(ByteOrder.BIG_ENDIAN).position(b.position() + PAGE);
            assertThat(page).as("page of unit %x", id).isEqualTo((id & URGENT) != 0 ? id & 0xFFFF : id % 1000);
            ids.add(id);
        }
        return ids;
    }

    @Test
    void urgentUnitsGoAheadOfQueuedUnitsInTheirOwnOrder() throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ram = pages(arena, 16);
            RecordingSink sink = new RecordingSink(true, Integer.MAX_VALUE);
            MigrationFile f = MigrationFile.forWriting(sink);
            unit(f, ram, 1, 1);
            f.flush(); // on its way: nothing overtakes it
            for (int i = 2; i <= 4; i++) {
                f.markUnitStart();
                unit(f, ram, i, i);
            }
            f.beginUrgent();
            unit(f, ram, URGENT | 9, 9);
            assertThat(f.endUrgent()).isTrue();
            f.markUnitStart();
            unit(f, ram, 5, 5);
            f.beginUrgent();
            unit(f, ram, URGENT | 10, 10);
            unit(f, ram, URGENT | 11, 11);
            assertThat(f.endUrgent()).isTrue();
            assertThat(sink.bytes.size()).as("nothing more written before the flush").isEqualTo(UNIT);
            f.flush();
            assertThat(units(sink)).containsExactly(1L, URGENT | 9, URGENT | 10, URGENT | 11, 2L, 3L, 4L, 5L);
            assertThat(f.position()).isEqualTo(8L * UNIT);
        }
    }

    @Test
    void aUnitAlreadyPartlyWrittenIsFinishedFirst() throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ram = pages(arena, 16);
            RecordingSink sink = new RecordingSink(true, Integer.MAX_VALUE);
            MigrationFile f = MigrationFile.forWriting(sink);
            f.markUnitStart();
            f.putBe64(2);
            f.flush(); // unit 2's id went out, its page did not
            f.putRam(ram, 2L * PAGE, PAGE);
            f.beginUrgent();
            unit(f, ram, URGENT | 7, 7);
            assertThat(f.endUrgent()).as("nothing whole to overtake").isFalse();
            f.markUnitStart();
            unit(f, ram, 3, 3);
            f.flush();
            assertThat(units(sink)).containsExactly(2L, URGENT | 7, 3L);
        }
    }

    /**
     * Many units through a slow peer (short writes) and the buffer's own writes (page-list and
     * byte limits): each urgent unit lands right after the unit that was partly handed to the
     * channel when it began (or right where the channel stopped, between units), ahead of every
     * unit queued after that.
     */
    @Test
    void urgentUnitsOvertakeEveryQueuedUnitAcrossTheBuffersOwnWrites() throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            int units = 3000;
            MemorySegment ram = pages(arena, 1024);
            RecordingSink sink = new RecordingSink(true, 100_000);
            MigrationFile f = MigrationFile.forWriting(sink);
            List<Long> expectedAt = new ArrayList<>();
            int urgent = 0;
            for (int i = 0; i < units; i++) {
                f.markUnitStart();
                unit(f, ram, i, i % 1000);
                if (i % 97 == 13) {
                    f.beginUrgent();
                    // Whole units written so far, rounded up: the unit in flight finishes first.
                    long written = sink.bytes.size();
                    expectedAt.add((written + UNIT - 1) / UNIT);
                    int page = 1000 + urgent % 24;
                    unit(f, ram, URGENT | ((long) urgent << 16) | page, page);
                    f.endUrgent();
                    urgent++;
                }
            }
            f.flush();
            List<Long> ids = units(sink);
            assertThat(ids).hasSize(units + urgent);
            List<Long> background = ids.stream().filter(id -> (id & URGENT) == 0).toList();
            assertThat(background).as("background units in their order").isSorted().hasSize(units);
            int seen = 0;
            for (int at = 0; at < ids.size(); at++) {
                long id = ids.get(at);
                if ((id & URGENT) != 0) {
                    int j = (int) ((id & ~URGENT) >>> 16);
                    assertThat(j).as("urgent units in their order").isEqualTo(seen);
                    // Urgent units queued together stand together at the front.
                    long front = expectedAt.get(j);
                    int ahead = 0;
                    for (int k = j - 1; k >= 0 && expectedAt.get(k) == front; k--) {
                        ahead++;
                    }
                    assertThat((long) at).as("urgent unit %d", j).isEqualTo(front + ahead);
                    seen++;
                }
            }
            assertThat(seen).isEqualTo(urgent);
        }
    }
}
