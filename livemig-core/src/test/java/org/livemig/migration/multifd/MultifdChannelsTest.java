package org.livemig.migration.multifd;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

import java.io.IOException;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.livemig.memory.GuestRam;
import org.livemig.memory.RamBlock;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.MultifdPacket;
import org.livemig.transport.MigrationAddress;
import org.livemig.transport.MigrationConnection;
import org.livemig.transport.MigrationListener;
import org.livemig.transport.Transports;

/** {@link MultifdSender} and {@link MultifdReceiver} over real sockets, and the receiver against bad input. */
class MultifdChannelsTest {
    private static final Duration WAIT = Duration.ofSeconds(30);
    private static final int PAGES = 1024;

    @TempDir
    Path dir;

    private MigrationListener listener;
    private final List<AutoCloseable> closing = new ArrayList<>();
    private GuestRam dstRam;
    private final AtomicReference<IOException> reported = new AtomicReference<>();

    @BeforeEach
    void setUp() throws IOException {
        listener = Transports.listen(MigrationAddress.parse("unix:" + dir.resolve("mfd.sock")));
        dstRam = new GuestRam();
        dstRam.addBlock("pc.ram", (long) PAGES * RamBlock.PAGE_SIZE, true);
    }

    @AfterEach
    void tearDown() throws Exception {
        for (AutoCloseable c : closing.reversed()) {
            c.close();
        }
        listener.close();
        dstRam.close();
    }

    private MigrationConnection connect() throws IOException {
        MigrationConnection c = Transports.connect(listener.boundAddress(), Duration.ofSeconds(10));
        closing.add(c);
        return c;
    }

    private MultifdReceiver receiver(int channels) {
        MultifdReceiver r = new MultifdReceiver(dstRam, channels, new AtomicLong(), e -> reported.compareAndSet(null, e));
        closing.add(r);
        return r;
    }

    private static void fill(RamBlock b, long seed) {
        Random r = new Random(seed);
        for (long i = 0; i < b.usedLength() / 8; i++) {
            b.memory().setAtIndex(ValueLayout.JAVA_LONG, i, r.nextLong());
        }
    }

    private static boolean sameContent(RamBlock a, RamBlock b) {
        return a.memory().mismatch(b.memory()) == -1;
    }

    @Test
    void pagesSentOverThreeChannelsArriveWholeAtEachSync() throws Exception {
        try (GuestRam srcRam = new GuestRam()) {
            RamBlock src = srcRam.addBlock("pc.ram", (long) PAGES * RamBlock.PAGE_SIZE, true);
            fill(src, 1);
            List<MigrationConnection> out = new ArrayList<>();
            for (int i = 0; i < 3; i++) {
                out.add(connect());
            }
            AtomicLong queued = new AtomicLong();
            MultifdSender sender = new MultifdSender(out, new byte[16], queued::addAndGet);
            closing.add(sender);
            MultifdReceiver receiver = receiver(3);
            boolean all = false;
            for (int i = 0; i < 3; i++) {
                all = receiver.addChannel(listener.accept());
            }
            assertThat(all).isTrue();
            for (int round = 0; round < 3; round++) {
                if (round > 0) {
                    fill(src, round + 1);
                }
                for (long p = 0; p < PAGES; p++) {
                    sender.queuePage(src, p * RamBlock.PAGE_SIZE);
                }
                // The destination's main thread waits for the channels' SYNC, as at a section's EOS.
                CompletableFuture<Void> synced = CompletableFuture.runAsync(() -> {
                    try {
                        receiver.syncMain();
                    } catch (IOException e) {
                        throw new java.io.UncheckedIOException(e);
                    }
                });
                sender.sync();
                synced.get(30, TimeUnit.SECONDS);
                assertThat(sameContent(src, dstRam.block("pc.ram"))).as("round %d", round).isTrue();
            }
            assertThat(receiver.pages()).isEqualTo(3L * PAGES);
            assertThat(sender.pages()).isEqualTo(3L * PAGES);
            sender.finish();
            // Every byte the channels wrote is told once (by the end: a sync does not wait for its
            // SYNC packets to go out): 8 full packets and a SYNC per channel a round, and each
            // channel's initial packet.
            assertThat(queued.get()).isEqualTo(3L * 8 * (MultifdPacket.headerBytes(128) + 128L * RamBlock.PAGE_SIZE)
                    + 3L * 3 * MultifdPacket.headerBytes(128) + 3L * MultifdPacket.INIT_PACKET_BYTES);
            assertThat(reported.get()).as("a channel closed at a packet boundary is no error").isNull();
        }
    }

    /** A raw multifd channel: its initial packet with {@code id}, then whatever the test writes. */
    private MigrationFile rawChannel(int id) throws IOException {
        MigrationFile f = MigrationFile.forWriting(connect().out());
        MultifdPacket.writeInit(f, new byte[16], id);
        f.flush();
        return f;
    }

    /** A one-channel receiver with its raw channel connected. */
    private record OneChannel(MultifdReceiver receiver, MigrationFile channel) {}

    private OneChannel oneChannel() throws IOException {
        MultifdReceiver r = receiver(1);
        MigrationFile f = rawChannel(0);
        assertThat(r.addChannel(listener.accept())).isTrue();
        return new OneChannel(r, f);
    }

    /** A packet of zero-filled pages at {@code offsets} ({@code data} pages of data follow it), flushed. */
    private static void packet(MigrationFile f, int flags, String block, int data, long... offsets) throws IOException {
        MultifdPacket.writeHeader(f, flags, 128, 0, block, offsets, offsets.length, RamBlock.PAGE_SIZE);
        f.putBytes(new byte[data * RamBlock.PAGE_SIZE]);
        f.flush();
    }

    private void expectChannelFailure(MultifdReceiver r, String... parts) {
        await().atMost(WAIT).until(() -> reported.get() != null);
        assertThat(reported.get().getMessage()).contains("multifd channel 0").contains(parts);
        assertThatThrownBy(r::syncMain).hasMessageContaining(parts[0]);
    }

    @Test
    void aPageOutsideItsBlockFailsTheChannelNamingTheOffset() throws Exception {
        OneChannel c = oneChannel();
        packet(c.channel(), 0, "pc.ram", 2, 0, (long) PAGES * RamBlock.PAGE_SIZE);
        expectChannelFailure(c.receiver(), "page offset 0x400000 outside block 'pc.ram'", "at byte offset " + (64 + 320 + 8));
    }

    @Test
    void anUnknownBlockOrACompressedPacketFailsTheChannel() throws Exception {
        OneChannel c = oneChannel();
        packet(c.channel(), 0, "vga.vram", 1, 0);
        expectChannelFailure(c.receiver(), "unknown RAM block 'vga.vram'");

        reported.set(null);
        OneChannel z = oneChannel();
        packet(z.channel(), MultifdPacket.FLAG_ZSTD, "pc.ram", 0, 0);
        expectChannelFailure(z.receiver(), "flags received 0x4 flags expected 0x0 (multifd-compression none here)");
    }

    @Test
    void aChannelThatEndsBeforeItsSyncFailsTheWaitInsteadOfHangingIt() throws Exception {
        OneChannel c = oneChannel();
        packet(c.channel(), 0, "pc.ram", 1, 0);
        closing.getLast().close(); // the channel's connection
        assertThatThrownBy(c.receiver()::syncMain).hasMessageContaining("multifd channel 0 ended before its SYNC packet");
        assertThat(c.receiver().pages()).isEqualTo(1);
    }

    @Test
    void channelIdsOutOfRangeOrTwiceAreRefused() throws Exception {
        MultifdReceiver r = receiver(2);
        rawChannel(2);
        assertThatThrownBy(() -> r.addChannel(listener.accept()))
                .hasMessageContaining("multifd channel id 2").hasMessageContaining("expected 0..1");
        // The main thread is told too, instead of waiting for a channel 0 at its next EOS.
        assertThat(reported.get()).hasMessageContaining("multifd channel id 2");
        assertThatThrownBy(r::syncMain).hasMessageContaining("multifd channel id 2");
        rawChannel(1);
        assertThat(r.addChannel(listener.accept())).isFalse();
        rawChannel(1);
        assertThatThrownBy(() -> r.addChannel(listener.accept())).hasMessageContaining("id 1 connected twice");
        // The main stream's bytes on a multifd connection.
        MigrationFile f = MigrationFile.forWriting(connect().out());
        f.putBe32(0x5145564D);
        f.putBe32(3);
        f.putBytes(new byte[56]);
        f.flush();
        assertThatThrownBy(() -> r.addChannel(listener.accept()))
                .hasMessageContaining("initial packet magic 0x5145564d, expected 0x11223344");
    }

    /**
     * The source's end: after {@link MultifdSender#beginFinish} the migration thread waits for the
     * destination's SHUT, not for the channels; a channel that then fails its last packet must be
     * told to whoever waits (the listener), also when it failed before the listener was set.
     */
    @Test
    void aChannelFailingAfterBeginFinishIsToldToTheListenerEarlyOrLate() throws Exception {
        try (GuestRam srcRam = new GuestRam()) {
            RamBlock src = srcRam.addBlock("pc.ram", (long) PAGES * RamBlock.PAGE_SIZE, true);
            fill(src, 3);
            MultifdSender sender = new MultifdSender(List.of(connect()), new byte[16], n -> { });
            closing.add(sender);
            listener.accept().close(); // the destination's end of the channel goes away
            AtomicReference<IOException> early = new AtomicReference<>();
            sender.onFailure(early::set);
            try {
                for (long p = 0; p < 129; p++) {
                    sender.queuePage(src, p * RamBlock.PAGE_SIZE); // the 129th hands a full packet to the channel
                }
                sender.beginFinish();
            } catch (IOException e) {
                assertThat(e).hasMessageContaining("multifd channel 0"); // it failed already: also fine
            }
            await().atMost(WAIT).until(() -> early.get() != null);
            assertThat(early.get()).hasMessageContaining("multifd channel 0");
            AtomicReference<IOException> late = new AtomicReference<>();
            sender.onFailure(late::set);
            assertThat(late.get()).isSameAs(early.get());
            assertThatThrownBy(sender::finish).hasMessageContaining("multifd channel 0");
        }
    }

    @Test
    void shutdownUnblocksAMainThreadWaitingForAChannel() throws Exception {
        MultifdReceiver r = receiver(2);
        CompletableFuture<Throwable> waiting = CompletableFuture.supplyAsync(() -> {
            try {
                r.syncMain();
                return null;
            } catch (IOException e) {
                return e;
            }
        });
        // Nothing connects; the wait is ended by shutdown (yank), not by a timeout.
        r.shutdown();
        assertThat(waiting.get(30, TimeUnit.SECONDS)).hasMessageContaining("shut down");
    }

    private MultifdReceiver receiver(int channels, org.livemig.stream.MultifdCompression.Method method) {
        MultifdReceiver r = new MultifdReceiver(dstRam, channels, method, new AtomicLong(),
                e -> reported.compareAndSet(null, e));
        closing.add(r);
        return r;
    }

    /** zlib data of pages 0 and 1 of a random 8-page source, as a sender's channel stream would flush it. */
    private static byte[] compressedPages(org.livemig.stream.MultifdCompression.Method method) {
        try (GuestRam src = new GuestRam()) {
            RamBlock b = src.addBlock("pc.ram", 8L * RamBlock.PAGE_SIZE, false);
            fill(b, 5);
            try (var enc = org.livemig.stream.MultifdCompression.encoder(method, 1, 128, RamBlock.PAGE_SIZE)) {
                int len = enc.encode(b.memory(), new long[] {0, RamBlock.PAGE_SIZE}, 2, RamBlock.PAGE_SIZE);
                return enc.output().asSlice(0, len).toArray(ValueLayout.JAVA_BYTE);
            }
        }
    }

    @org.junit.jupiter.params.ParameterizedTest(name = "{0}")
    @org.junit.jupiter.params.provider.EnumSource(value = org.livemig.stream.MultifdCompression.Method.class,
            names = {"ZLIB", "ZSTD"})
    void aCorruptOrCutCompressedPacketFailsTheChannelNamingThePageAndNeverWritesPastIt(
            org.livemig.stream.MultifdCompression.Method method) throws Exception {
        byte[] data = compressedPages(method);
        // pages 2 and 5 receive; every other page of the block is watched
        dstRam.block("pc.ram").memory().fill((byte) 0x5A);
        for (int variant = 0; variant < 2; variant++) {
            reported.set(null);
            MultifdReceiver r = receiver(1, method);
            MigrationFile f = rawChannel(0);
            assertThat(r.addChannel(listener.accept())).isTrue();
            byte[] sent = data.clone();
            long[] offsets = {2L * RamBlock.PAGE_SIZE, 5L * RamBlock.PAGE_SIZE};
            if (variant == 0) {
                // the stream's first bytes (zlib's header, zstd's frame magic) and more
                for (int i = 0; i < sent.length; i += 7) {
                    sent[i] ^= 0x5A;
                }
                MultifdPacket.writeHeaderWithDataSize(f, method.flag(), 128, 7, "pc.ram", offsets, 2, sent.length);
                f.putBytes(sent);
                f.flush();
                expectChannelFailure(r, "multifd packet 7");
                assertThat(reported.get().getMessage()).containsPattern("page 0x[25]000 of block 'pc.ram'|its 2 pages")
                        .contains("at byte offset " + (64 + MultifdPacket.headerBytes(128)));
            } else {
                // the packet says more data follows than comes: the channel ends inside it
                MultifdPacket.writeHeaderWithDataSize(f, method.flag(), 128, 8, "pc.ram", offsets, 2, sent.length);
                f.putBytes(java.util.Arrays.copyOf(sent, sent.length / 2));
                f.flush();
                closing.get(closing.size() - 1).close();
                expectChannelFailure(r, "truncated");
            }
            byte[] all = dstRam.block("pc.ram").memory().toArray(ValueLayout.JAVA_BYTE);
            for (int i = 0; i < all.length; i++) {
                int page = i / RamBlock.PAGE_SIZE;
                if (page != 2 && page != 5 && all[i] != 0x5A) {
                    throw new AssertionError(method + " variant " + variant + ": byte " + i + " outside the packet's pages");
                }
            }
        }
        // Damage a decoder may not notice (zstd keeps incompressible pages verbatim, and QEMU's
        // streams carry no checksum): the pages may be wrong, but nothing else is written and the
        // channel goes on to its SYNC, or fails; it never hangs.
        java.util.Random rnd = new java.util.Random(11);
        for (int round = 0; round < 20; round++) {
            reported.set(null);
            MultifdReceiver q = receiver(1, method);
            MigrationFile c = rawChannel(0);
            assertThat(q.addChannel(listener.accept())).isTrue();
            byte[] sent = data.clone();
            sent[sent.length / 2 + rnd.nextInt(sent.length / 2)] ^= (byte) (1 + rnd.nextInt(255));
            MultifdPacket.writeHeaderWithDataSize(c, method.flag(), 128, 10, "pc.ram",
                    new long[] {2L * RamBlock.PAGE_SIZE, 5L * RamBlock.PAGE_SIZE}, 2, sent.length);
            c.putBytes(sent);
            MultifdPacket.writeHeader(c, MultifdPacket.FLAG_SYNC, 128, 11, null, new long[0], 0, RamBlock.PAGE_SIZE);
            c.flush();
            CompletableFuture<Throwable> synced = CompletableFuture.supplyAsync(() -> {
                try {
                    q.syncMain();
                    return null;
                } catch (IOException e) {
                    return e;
                }
            });
            Throwable t = synced.get(30, TimeUnit.SECONDS);
            if (t != null) {
                assertThat(t.getMessage()).as("round %d", round).contains("multifd packet 10");
            }
            byte[] all = dstRam.block("pc.ram").memory().toArray(ValueLayout.JAVA_BYTE);
            for (int i = 0; i < all.length; i++) {
                int page = i / RamBlock.PAGE_SIZE;
                if (page != 2 && page != 5 && all[i] != 0x5A) {
                    throw new AssertionError(method + " round " + round + ": byte " + i + " outside the packet's pages");
                }
            }
        }
        // A length beyond what a packet of pages can take is refused before anything is read.
        reported.set(null);
        MultifdReceiver r = receiver(1, method);
        MigrationFile f = rawChannel(0);
        assertThat(r.addChannel(listener.accept())).isTrue();
        MultifdPacket.writeHeaderWithDataSize(f, method.flag(), 128, 9, "pc.ram", new long[] {0}, 1, 1 << 30);
        f.flush();
        expectChannelFailure(r, "says 1073741824 compressed bytes follow");
    }
}
