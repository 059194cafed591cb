package org.livemig.memory.postcopy;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assumptions.assumeThat;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.livemig.memory.GuestRam;

/** The contract on the kernel's write-protect mode; skipped where userfaultfd cannot write-protect. */
class UserfaultfdWriteTrackerTest extends WriteTrackerContractTest {
    @Override
    void assumeSupported() {
        PostcopyBackend.Availability a = WriteTracker.userfaultfdAvailability();
        assumeThat(a.available()).as("userfaultfd write-protect: " + a.reason()).isTrue();
    }

    @Override
    WriteTracker create(GuestRam ram) throws IOException {
        return WriteTracker.userfaultfd(ram);
    }

    @Override
    String expectedName() {
        return "userfaultfd";
    }

    /**
     * RAM is protected in prepare already: a write before start goes on (the early thread lets
     * it), and start protects that page again, so a write after start waits for it like any
     * other, and the copy holds the value of the write before start.
     */
    @Test
    void aPageWrittenBetweenPrepareAndStartIsProtectedAgainAtStart() throws Exception {
        tracker.prepare();
        long off = 7L * PAGE + 16;
        CompletableFuture<Void> before = guest("vcpu-0", () -> {
            ram.writeLong(block, off, 4242L);
            ram.writeLong(block, off + PAGE, 4343L); // page 8 too: a range of two
            return null;
        });
        before.get(WAIT.toMillis(), TimeUnit.MILLISECONDS);
        tracker.start();
        assertThat(tracker.startAccount()).contains("2 pages in 1 ranges protected again");
        CompletableFuture<Void> after = guest("vcpu-1", () -> {
            ram.writeLong(block, off, -5L);
            return null;
        });
        PageFault f = awaitFault();
        assertThat(f.page()).isEqualTo(7);
        assertThat(after).as("the write after start waits for its page").isNotDone();
        MemorySegment copy = copyOut(block, 7);
        tracker.saved(block, 7, 1);
        after.get(WAIT.toMillis(), TimeUnit.MILLISECONDS);
        assertThat(copy.get(ValueLayout.JAVA_LONG, 16)).as("the copy: the value written before start").isEqualTo(4242L);
        assertThat(ram.readLong(block, off)).isEqualTo(-5L);
    }
}
