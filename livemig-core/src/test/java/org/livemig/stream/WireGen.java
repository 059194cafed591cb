package org.livemig.stream;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.random.RandomGenerator;
import org.livemig.stream.ReturnPathMessage.Pong;
import org.livemig.stream.ReturnPathMessage.RecvBitmap;
import org.livemig.stream.ReturnPathMessage.ReqPages;
import org.livemig.stream.ReturnPathMessage.ReqPagesId;
import org.livemig.stream.ReturnPathMessage.ResumeAck;
import org.livemig.stream.ReturnPathMessage.Shut;
import org.livemig.stream.ReturnPathMessage.SwitchoverAck;

/** Random postcopy wire values drawn from a seeded generator, for round-trip tests. */
final class WireGen {
    private static final String[] COMMON = {"pc.ram", "pc.bios", "pc.rom", "/rom@etc/acpi/tables", "mem0",
        "0000:00:02.0/vga.vram"};
    private final RandomGenerator r;

    WireGen(RandomGenerator r) {
        this.r = r;
    }

    String blockName() {
        if (r.nextInt(3) > 0) {
            return COMMON[r.nextInt(COMMON.length)];
        }
        StringBuilder sb = new StringBuilder();
        int target = 1 + r.nextInt(255);
        while (true) {
            String piece = switch (r.nextInt(10)) {
                case 0 -> "\u00e9"; // 2 bytes in UTF-8
                case 1 -> "\u20ac"; // 3 bytes
                default -> String.valueOf((char) (0x21 + r.nextInt(0x5e)));
            };
            if ((sb + piece).getBytes(StandardCharsets.UTF_8).length > target) {
                break;
            }
            sb.append(piece);
        }
        if (sb.isEmpty()) {
            sb.append('x');
        }
        return sb.toString();
    }

    long start() {
        return switch (r.nextInt(4)) {
            case 0 -> 0;
            case 1 -> Long.MAX_VALUE - 1 - r.nextLong(1 << 20);
            default -> (r.nextLong(1L << 40)) << 12;
        };
    }

    long length32() {
        return switch (r.nextInt(4)) {
            case 0 -> 0xFFFF_FFFFL;
            case 1 -> 4096;
            default -> r.nextLong(1L << 32);
        };
    }

    long[] words() {
        long[] w = new long[r.nextInt(4) == 0 ? 0 : r.nextInt(2000)];
        for (int i = 0; i < w.length; i++) {
            w[i] = switch (r.nextInt(3)) {
                case 0 -> 0;
                case 1 -> -1L;
                default -> r.nextLong();
            };
        }
        return w;
    }

    ReturnPathMessage message() {
        return switch (r.nextInt(7)) {
            case 0 -> new Shut(r.nextInt());
            case 1 -> new Pong(r.nextInt());
            case 2 -> new ReqPagesId(blockName(), start(), length32());
            case 3 -> new ReqPages(start(), length32());
            case 4 -> new RecvBitmap(blockName(), words());
            case 5 -> new ResumeAck();
            default -> new SwitchoverAck();
        };
    }

    List<ReturnPathMessage> messages(int max) {
        List<ReturnPathMessage> list = new ArrayList<>();
        int n = 1 + r.nextInt(max);
        for (int i = 0; i < n; i++) {
            list.add(message());
        }
        return list;
    }

    PostcopyAdviseCommand advise() {
        if (r.nextInt(4) == 0) {
            return PostcopyAdviseCommand.DIRTY_BITMAP_ONLY;
        }
        long tps = 1L << (9 + r.nextInt(22));
        long summary = 0;
        int n = 1 + r.nextInt(4);
        for (int i = 0; i < n; i++) {
            summary |= 1L << (12 + r.nextInt(40));
        }
        return new PostcopyAdviseCommand(summary, tps);
    }

    PostcopyRamDiscardCommand discard() {
        String name = blockName();
        int max = PostcopyRamDiscardCommand.maxRanges(name.getBytes(StandardCharsets.UTF_8).length);
        int n = switch (r.nextInt(4)) {
            case 0 -> 0;
            case 1 -> max;
            default -> r.nextInt(PostcopyRamDiscardCommand.QEMU_RANGES_PER_COMMAND + 1);
        };
        List<PostcopyRamDiscardCommand.Range> ranges = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            long start = start();
            long len = r.nextInt(5) == 0 ? Long.MAX_VALUE - start : r.nextLong(Long.MAX_VALUE - start) & ~0xFFFL;
            ranges.add(new PostcopyRamDiscardCommand.Range(start, len));
        }
        return new PostcopyRamDiscardCommand(name, ranges);
    }
}
