package org.livemig.migration;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.Map;
import org.livemig.machine.AbChecker;
import org.livemig.machine.Accelerator;
import org.livemig.machine.Machine;
import org.livemig.machine.Workload;
import org.livemig.memory.RamBlock;
import org.livemig.stream.MigrationFile;
import org.livemig.vmstate.SaveStateEntry;
import tools.jackson.databind.node.JsonNodeFactory;
import tools.jackson.databind.node.ObjectNode;

/**
 * Fingerprints of a stopped machine, to prove a migration moved everything: a 64-bit hash of
 * every RAM block, a SHA-256 of every device's encoded state (an accelerator's: a hash of its
 * memory and of its register state), and the A-B check of an {@code ab}
 * guest. Compare a source's fingerprint taken after switchover with the destination's taken
 * before it resumes.
 */
public final class StateDigest {
    private StateDigest() {}

    /** Called with the BQL held. Device state digests, keyed "idstr/instance". */
    public static Map<String, String> devices(Machine m) throws IOException {
        m.bql().assertHeld();
        Map<String, String> out = new LinkedHashMap<>();
        for (SaveStateEntry e : m.registry().entries()) {
            if (e.isIterative() || e.idstr().equals(org.livemig.machine.Devices.GLOBALSTATE_IDSTR)) {
                continue; // RAM is hashed apart; the run state a migration carries is not the guest's
            }
            MigrationFile f = MigrationFile.toMemory();
            e.saveState(f, null);
            out.put(e.idstr() + "/" + e.instanceId(), sha256(f.toByteArray()));
        }
        for (Accelerator a : m.devices().accelerators()) {
            // its memory (as RAM is hashed) and its register state
            MigrationFile f = MigrationFile.toMemory();
            org.livemig.vmstate.VmStateCodec.save(f, Accelerator.VMSD, a, null);
            out.put(a.idstr() + "/0", hash(a.memory()) + "/" + sha256(f.toByteArray()));
        }
        return out;
    }

    /** A hash of a device's memory, as {@link #ram} hashes a block. */
    public static String hash(MemorySegment s) {
        long n = s.byteSize() / 8;
        long h = 0x9E3779B97F4A7C15L ^ n;
        for (long i = 0; i < n; i++) {
            long v = s.getAtIndex(ValueLayout.JAVA_LONG, i);
            if (v != 0) {
                h += mix(v ^ (i * 0xC2B2AE3D27D4EB4FL));
            }
        }
        return String.format("%016x", mix(h));
    }

    /** A hash of one block's contents (not cryptographic; position-dependent, fast). */
    public static String ram(RamBlock b) {
        return hash(b.memory());
    }

    /** One 64-bit hash per page of {@code b}, as hex (16 digits a page). */
    public static String pageHashes(RamBlock b) {
        MemorySegment s = b.memory();
        StringBuilder sb = new StringBuilder((int) Math.min(Integer.MAX_VALUE - 16, b.pageCount() * 16));
        for (long p = 0; p < b.pageCount(); p++) {
            long h = 0x9E3779B97F4A7C15L;
            long base = p << (RamBlock.PAGE_BITS - 3);
            for (long i = 0; i < RamBlock.PAGE_SIZE / 8; i++) {
                h = mix(h ^ s.getAtIndex(ValueLayout.JAVA_LONG, base + i));
            }
            sb.append(String.format("%016x", h));
        }
        return sb.toString();
    }

    /**
     * Called with the BQL held. Per-page detail for verifying a postcopy destination whose guest
     * has run: every page's hash, and (when dirty logging is on) the pages the guest wrote since it
     * started here. The guest must be stopped.
     */
    public static ObjectNode pages(Machine m) {
        m.bql().assertHeld();
        ObjectNode r = JsonNodeFactory.instance.objectNode();
        ObjectNode hashes = r.putObject("page-hashes");
        ObjectNode written = r.putObject("written-here");
        for (RamBlock b : m.ram().blocks()) {
            hashes.put(b.name(), pageHashes(b));
            if (m.ram().dirtyLogging()) {
                java.util.BitSet bits = new java.util.BitSet((int) b.pageCount());
                b.dirtyBitmap().harvestInto(bits);
                written.put(b.name(), HexFormat.of().formatHex(bits.toByteArray()));
            }
        }
        return r;
    }

    private static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }

    private static String sha256(byte[] b) {
        try {
            return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(b));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The whole fingerprint as JSON. Called with the BQL held, the guest stopped. */
    public static ObjectNode of(Machine m) throws IOException {
        ObjectNode r = JsonNodeFactory.instance.objectNode();
        r.put("run-state", m.runState().qemuName());
        ObjectNode ram = r.putObject("ram");
        for (RamBlock b : m.ram().blocks()) {
            ram.put(b.name(), ram(b));
        }
        ObjectNode dev = r.putObject("devices");
        devices(m).forEach(dev::put);
        if (m.workload() instanceof Workload.Ab ab) {
            AbChecker.Result res = AbChecker.check(m.mainBlock(), ab, m.vcpuCount());
            ObjectNode c = r.putObject("ab-check");
            c.put("ok", res.ok());
            c.put("detail", res.detail());
        }
        return r;
    }
}
