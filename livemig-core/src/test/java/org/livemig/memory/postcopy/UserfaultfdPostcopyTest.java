package org.livemig.memory.postcopy;

import org.livemig.testing.Smaps;

import org.livemig.memory.GuestRam;
import org.livemig.memory.RamBlock;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.RepeatedTest;
import org.junit.jupiter.api.RepetitionInfo;
import org.junit.jupiter.api.Test;

class UserfaultfdPostcopyTest extends PostcopyBackendContractTest {
    private static final MethodHandle MEMCPY = Linker.nativeLinker().downcallHandle(
            Linker.nativeLinker().defaultLookup().find("memcpy").orElseThrow(),
            FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG));

    @Override
    void assumeSupported() {
        PostcopyBackend.Availability a = PostcopyBackend.userfaultfdAvailability();
        assumeTrue(a.available(), () -> "userfaultfd unavailable: " + a.reason());
    }

    @Override
    PostcopyBackend create(GuestRam ram) throws IOException {
        return PostcopyBackend.userfaultfd(ram);
    }

    @Override
    String expectedName() {
        return "userfaultfd";
    }

    @Test
    void availabilitySaysHow() {
        assertThat(PostcopyBackend.userfaultfdAvailability().reason()).contains("userfaultfd via");
        List<String> log = new ArrayList<>();
        try (PostcopyBackend chosen = PostcopyBackend.choose(new GuestRam(), log::add)) {
            assertThat(chosen.name()).isEqualTo("userfaultfd");
        }
        assertThat(log).isEmpty();
    }

    /** The kernel blocks a faulting thread before any Java code runs: only mig/dst/fault learns of it. */
    @Test
    void faultsOnlyReachTheFaultThread() throws Exception {
        ConcurrentLinkedQueue<PageFault> offered = new ConcurrentLinkedQueue<>();
        backend.handleFaultsOnGuestThreads(f -> offered.add(f));
        backend.startListening();
        CompletableFuture<Long> read = guest("vcpu-1", () -> ram.readLong(block, 9L * PAGE));
        PageFault f = awaitFault();
        assertThat(f.page()).isEqualTo(9);
        backend.placePage(block, 9, pattern(3, 9));
        assertThat(read.get(WAIT.toMillis(), TimeUnit.MILLISECONDS)).isEqualTo(3 + 9 * 1000);
        assertThat(offered).isEmpty();
    }

    /**
     * Pre-faulted RAM may be backed by huge pages; from advise on (before any discard) its blocks
     * must be advised against them, or khugepaged could collapse a range with discarded pages
     * back into a huge page, zero-filled, and those pages would never fault. Once the backend is
     * closed, blocks advised for huge pages at allocation get the advice back.
     */
    @Test
    void hugePagesAreOffFromAdviseUntilClose() throws IOException {
        assumeSupported();
        try (GuestRam r = new GuestRam()) {
            RamBlock b = r.addBlock("pc.ram", 4L << 20, true);
            assertThat(Smaps.vmFlags(b.memory().address())).as("VmFlags of pre-faulted RAM before advise").doesNotContain("nh");
            RamBlock small = r.addBlock("vga.vram", 1L << 20, false);
            try (PostcopyBackend ignored = create(r)) {
                assertThat(Smaps.vmFlags(b.memory().address())).as("VmFlags after advise").contains("nh").doesNotContain("hg");
            }
            // As QEMU after postcopy: huge pages again where they were advised at allocation, and only there.
            assertThat(Smaps.vmFlags(b.memory().address())).as("VmFlags after close").contains("hg").doesNotContain("nh");
            assertThat(Smaps.vmFlags(small.memory().address())).as("VmFlags of a block never advised, after close").doesNotContain("hg");
        }
    }

    /**
     * Native code touching guest RAM directly (no accessor, no ReceivedMap check): the kernel
     * blocks it on a missing page and the first byte it can read comes with the whole page, since
     * UFFDIO_COPY maps a page at once.
     */
    @RepeatedTest(3)
    void nativeReadersSeeWholePagesOnly(RepetitionInfo rep) throws Exception {
        long seed = 0x0FFC0DEL + rep.getCurrentRepetition();
        int pages = 16;
        backend.startListening();
        ConcurrentLinkedQueue<String> failures = new ConcurrentLinkedQueue<>();
        List<CompletableFuture<Void>> readers = new ArrayList<>();
        for (int t = 0; t < 4; t++) {
            int me = t;
            readers.add(guest("native-reader-" + t, () -> {
                MemorySegment copy = arena.allocate(PAGE, PAGE);
                for (int i = 0; i < pages; i++) {
                    int p = (i + me * 3) % pages;
                    memcpy(copy, block.page(p));
                    for (int j = 0; j < PAGE / 8; j++) {
                        long v = copy.getAtIndex(ValueLayout.JAVA_LONG, j);
                        if (v != seed + p * 1000L + j) {
                            failures.add(String.format("seed %d: reader %d page %d long %d = 0x%x", seed, me, p, j, v));
                            return null;
                        }
                    }
                }
                return null;
            }));
        }
        SplittableRandom r = new SplittableRandom(seed);
        List<Integer> order = new ArrayList<>();
        for (int p = 0; p < pages; p++) {
            order.add(p);
        }
        for (int i = pages - 1; i > 0; i--) {
            order.set(i, order.set(r.nextInt(i + 1), order.get(i)));
        }
        for (int p : order) {
            java.util.concurrent.locks.LockSupport.parkNanos(r.nextLong(500_000));
            backend.placePage(block, p, pattern(seed, p));
        }
        for (CompletableFuture<Void> f : readers) {
            f.get(WAIT.toSeconds(), TimeUnit.SECONDS);
        }
        assertThat(failures).as("seed %d", seed).isEmpty();
    }

    private static void memcpy(MemorySegment dst, MemorySegment src) {
        try {
            MemorySegment ignored = (MemorySegment) MEMCPY.invokeExact(dst, src, (long) PAGE);
        } catch (Throwable t) {
            throw new AssertionError(t);
        }
    }

    @Test
    void unalignedNativeSourcesArePlaced() throws Exception {
        backend.startListening();
        MemorySegment big = arena.allocate(2L * PAGE, PAGE);
        MemorySegment src = big.asSlice(24, PAGE);
        src.fill((byte) 0x3C);
        assertThat(backend.placePage(block, 1, src)).isTrue();
        assertThat(ram.readByte(block, PAGE + 4095)).isEqualTo((byte) 0x3C);
    }
}
