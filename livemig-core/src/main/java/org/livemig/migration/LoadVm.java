package org.livemig.migration;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Supplier;
import org.livemig.machine.Machine;
import org.livemig.stream.MigrationFile;
import org.livemig.stream.PackagedCommand;
import org.livemig.stream.PostcopyAdviseCommand;
import org.livemig.stream.PostcopyRamDiscardCommand;
import org.livemig.stream.QemuStream;
import org.livemig.stream.RecvBitmapCommand;
import org.livemig.stream.SectionHeader;
import org.livemig.stream.StreamFormatException;
import org.livemig.vmstate.SaveStateEntry;
import org.livemig.vmstate.VmStateCodec;
import org.livemig.vmstate.VmStateException;
import org.livemig.vmstate.VmValue;

/**
 * Reads a stream into a machine (QEMU's qemu_loadvm_state). {@code bqlHeld} says whether the
 * caller holds the BQL: {@code false} on {@code mig/dst/main}, {@code true} for a snapshot loaded
 * on the main loop. Either way RAM is written without needing the lock, each device section is
 * decoded from the stream first and applied under the lock only for the apply step, and CPU
 * synchronisation runs under it.
 *
 * <p>One instance per load; owned by the loading thread.
 */
public final class LoadVm {
    /** Longest vmdesc trailer accepted (QEMU's analysis script reads at most 10 MiB). */
    private static final int MAX_VMDESC = 64 << 20;
    /** Longest configuration machine-type name accepted. */
    private static final int MAX_MACHINE_NAME = 256;

    /** Writes return-path messages to the source; opened on OPEN_RETURN_PATH. */
    public interface ReturnPath {
        void sendPong(int value) throws IOException;

        /** SWITCHOVER_ACK: the destination's devices have loaded their initial data (switchover-ack). */
        default void sendSwitchoverAck() throws IOException {
            throw new IOException("this return path cannot send SWITCHOVER_ACK");
        }
    }

    /** The destination's postcopy side, which the postcopy commands drive (null: no postcopy). */
    public interface PostcopyHandler {
        /** POSTCOPY_ADVISE. */
        void advise(PostcopyAdviseCommand advise, long at) throws IOException;

        /** POSTCOPY_RAM_DISCARD: these pages are stale or absent here. */
        void discard(PostcopyRamDiscardCommand discard, long at) throws IOException;

        /** POSTCOPY_LISTEN: start {@code mig/dst/listen} on the rest of {@code mainStream}. */
        void listen(LoadVm load, MigrationFile mainStream, long at) throws IOException;

        /** POSTCOPY_RUN: start the guest (from a BH on the main loop). */
        void run(long at) throws IOException;

        /** RECV_BITMAP (postcopy recovery): answer with what this side holds of the block. */
        void recvBitmap(RecvBitmapCommand cmd, long at) throws IOException;

        /** POSTCOPY_RESUME (postcopy recovery): the source is ready; acknowledge and go on. */
        void resume(long at) throws IOException;
    }

    /** How a section loop ended. */
    public enum Result {
        /** The stream's EOF section. */
        EOF,
        /** POSTCOPY_RUN: the rest of the stream belongs to the listen thread. */
        QUIT
    }

    private final Machine machine;
    private final RamLoader ram;
    private final Supplier<ReturnPath> returnPathOpener;
    /** Shared by mig/dst/main (package) and mig/dst/listen (main stream) once postcopy listens. */
    private final Map<Integer, SaveStateEntry> sections = new ConcurrentHashMap<>();
    private final ThreadLocal<String> currentSection = new ThreadLocal<>();
    private volatile ReturnPath returnPath;
    private volatile boolean footersExpected;
    private PostcopyHandler postcopy;
    private MigrationFile mainStream;
    /** ENABLE_COLO was read: after the initial load this side becomes a COLO secondary. */
    private volatile boolean coloEnabled;
    /** Whether this side allows ENABLE_COLO (its x-colo capability). */
    private boolean coloAllowed;
    /** This side's switchover-ack capability, and the load threads of this load (null: none). */
    private boolean switchoverAck;
    private LoadThreads loadThreads;
    /** The switchover's steps on this side (END sections, EOF, the load threads), for the destination's log line. */
    private final SwitchoverTimeline timeline = new SwitchoverTimeline();
    /** The live devices' side of the current whole-stream load; null outside one. */
    private volatile DeviceLoadContext devices;

    public LoadVm(Machine machine, RamStats stats, Supplier<ReturnPath> returnPathOpener) {
        this.machine = machine;
        this.ram = RamHandlers.of(machine).beginLoad(stats);
        this.returnPathOpener = returnPathOpener;
    }

    /** Lets ENABLE_COLO through: this side has the x-colo capability. */
    public void allowColo(boolean allowed) {
        this.coloAllowed = allowed;
    }

    /** True once the stream said ENABLE_COLO: the source will go on with COLO checkpoints. */
    public boolean coloEnabled() {
        return coloEnabled;
    }

    /**
     * Live devices: {@code switchoverAck} is this side's capability (devices that need to
     * approve the switchover do, and SWITCHOVER_ACK goes on the return path); {@code threads}
     * runs the devices' load threads, which {@code mig/dst/main} waits for at EOF (null: none).
     */
    public void useLiveDevices(boolean switchoverAck, LoadThreads threads) {
        this.switchoverAck = switchoverAck;
        this.loadThreads = threads;
    }

    /** The steps of the last load's switchover on this side. */
    public SwitchoverTimeline timeline() {
        return timeline;
    }

    /** Whether SWITCHOVER_ACK went to the source during this load. */
    public boolean switchoverAckSent() {
        DeviceLoadContext d = devices;
        return d != null && d.ackSent();
    }

    /** Lets the postcopy commands through to {@code handler}. */
    public void setPostcopyHandler(PostcopyHandler handler) {
        this.postcopy = handler;
    }

    /**
     * Called with the BQL held or not, as {@code bqlHeld} says; without it, blocks on IO. Loads a
     * whole stream. Returns {@link Result#QUIT} when postcopy took over: the listen thread then
     * loads the rest and the RUN bottom half synchronises the CPUs.
     */
    public Result loadvmState(MigrationFile f, boolean bqlHeld) throws IOException {
        if (!bqlHeld) {
            machine.bql().assertNotHeld();
        }
        mainStream = f;
        readHeader(f);
        timeline.clear();
        DeviceLoadContext d = new DeviceLoadContext(machine, switchoverAck, loadThreads, bqlHeld, () -> returnPath,
                timeline);
        devices = d;
        d.setup(machine.registry().entries());
        machine.bql().withHeld(bqlHeld, machine::cpuSynchronizeAllPreLoadvm);
        Result r = loadvmStateMain(f, bqlHeld);
        if (r == Result.EOF) {
            // Device state still loading on the load threads: wait for it with the BQL released.
            d.awaitLoadThreads();
            timeline.mark("loaded");
            machine.bql().withHeld(bqlHeld, machine::cpuSynchronizeAllPostInit);
        }
        return r;
    }

    private void readHeader(MigrationFile f) throws IOException {
        long at = f.position();
        int magic = f.getBe32();
        if (magic != QemuStream.MAGIC) {
            throw new StreamFormatException(String.format("not a migration stream: magic 0x%08x, expected 0x%08x (\"QEVM\")",
                    magic, QemuStream.MAGIC), at);
        }
        at = f.position();
        int version = f.getBe32();
        if (version == QemuStream.VERSION_COMPAT) {
            throw new StreamFormatException("stream version 2 is the obsolete format and is not supported", at);
        }
        if (version != QemuStream.VERSION) {
            throw new StreamFormatException("unsupported stream version " + version + " (expected 3)", at);
        }
        if (f.peekByte() == QemuStream.SECTION_CONFIGURATION) {
            at = f.position();
            f.getByte();
            int len = f.getBe32();
            if (len < 0 || len > MAX_MACHINE_NAME) {
                throw new StreamFormatException("configuration section: machine type length " + len + " out of range", at);
            }
            String name = new String(f.getBytes(len), StandardCharsets.UTF_8);
            if (!name.equals(SaveVm.MACHINE_TYPE)) {
                throw new StreamFormatException("Machine type received is '" + name + "' and local is '"
                        + SaveVm.MACHINE_TYPE + "'", at, "configuration", null);
            }
            if (f.peekByte() == QemuStream.SECTION_SUBSECTION) {
                throw new StreamFormatException("configuration subsections are not supported by livemig machines",
                        f.position(), "configuration", null);
            }
            footersExpected = true;
        }
    }

    /** The section loop (qemu_loadvm_state_main): returns after EOF. */
    public Result loadvmStateMain(MigrationFile f, boolean bqlHeld) throws IOException {
        while (true) {
            long at = f.position();
            int type = f.getByte();
            currentSection.remove();
            try {
                switch (type) {
                    case QemuStream.SECTION_START, QemuStream.SECTION_FULL -> loadStartFull(f, type, bqlHeld);
                    case QemuStream.SECTION_PART -> loadPartEnd(f, at);
                    case QemuStream.SECTION_END -> {
                        timeline.mark("end");
                        loadPartEnd(f, at);
                        timeline.mark("/end:" + currentSection.get());
                    }
                    case QemuStream.SECTION_COMMAND -> {
                        if (processCommand(f, at, bqlHeld) == Result.QUIT) {
                            return Result.QUIT;
                        }
                    }
                    case QemuStream.SECTION_EOF -> {
                        timeline.mark("eof");
                        return Result.EOF;
                    }
                    default -> throw new StreamFormatException(String.format("unknown section type 0x%02x", type), at);
                }
            } catch (StreamFormatException e) {
                String section = currentSection.get();
                throw section == null ? e : e.inSection(section);
            }
        }
    }

    private void loadStartFull(MigrationFile f, int type, boolean bqlHeld) throws IOException {
        long at = f.position() - 1;
        SectionHeader h = SectionHeader.readNamed(f, type, at);
        int sectionId = h.sectionId();
        String idstr = h.idstr();
        int instanceId = h.instanceId();
        int version = h.versionId();
        String section = "'" + idstr + "' instance " + instanceId;
        currentSection.set(section);
        SaveStateEntry e = machine.registry().find(idstr, instanceId).orElseThrow(() -> new StreamFormatException(
                "unknown section '" + idstr + "' instance " + instanceId + " (id " + sectionId + ")", at, section, null));
        if (e.isIterative() != (type == QemuStream.SECTION_START)) {
            throw new StreamFormatException((type == QemuStream.SECTION_START ? "START" : "FULL")
                    + " section for '" + idstr + "', which is " + (e.isIterative() ? "iterative" : "a device"), at);
        }
        if (version > e.versionId()) {
            throw new StreamFormatException("section '" + idstr + "' has version " + version
                    + ", newer than this machine's " + e.versionId(), at);
        }
        sections.put(sectionId, e);
        if (e.isIterative()) {
            e.handlers().loadState(f, version);
        } else {
            loadDevice(f, e, version, bqlHeld);
        }
        checkFooter(f, sectionId);
    }

    private void loadDevice(MigrationFile f, SaveStateEntry e, int version, boolean bqlHeld) throws IOException {
        long at = f.position();
        // Decode with no lock: this is where the stream may stall.
        VmValue.Struct staged = bqlHeld
                ? VmStateCodec.decode(f, e.vmsd(), version)
                : decodeUnlocked(f, e, version);
        // Apply, with the lock for the steps the device says need it, briefly each.
        try {
            e.applyState(staged, hookLock(bqlHeld));
        } catch (VmStateException ex) {
            throw new StreamFormatException("device refused its state: " + ex.getMessage(), at, currentSection.get(), ex);
        }
    }

    /** The BQL around each load step that needs it: held throughout when the caller holds it, else taken per step. */
    private org.livemig.vmstate.HookLock hookLock(boolean bqlHeld) {
        return DeviceLoadContext.hookLock(machine, bqlHeld);
    }

    /** Called without the BQL. */
    private VmValue.Struct decodeUnlocked(MigrationFile f, SaveStateEntry e, int version) throws IOException {
        machine.bql().assertNotHeld();
        return VmStateCodec.decode(f, e.vmsd(), version);
    }

    /** A device section decoded from a stream but not yet applied. */
    public record StagedSection(SaveStateEntry entry, VmValue.Struct value, long at) {}

    /**
     * Called without the BQL; may block on IO. Decodes a device-state stream (FULL sections up to
     * EOF, no stream header: what a COLO checkpoint carries) into staged values, applying nothing,
     * so that a bad or cut one is found before anything of it reaches the machine.
     */
    public List<StagedSection> stageDevices(MigrationFile f) throws IOException {
        machine.bql().assertNotHeld();
        List<StagedSection> staged = new ArrayList<>();
        while (true) {
            long at = f.position();
            int type = f.getByte();
            if (type == QemuStream.SECTION_EOF) {
                return staged;
            }
            if (type != QemuStream.SECTION_FULL) {
                throw new StreamFormatException(String.format("section type 0x%02x in device state (only FULL sections"
                        + " and EOF belong there)", type), at);
            }
            SectionHeader h = SectionHeader.readNamed(f, type, at);
            String section = "'" + h.idstr() + "' instance " + h.instanceId();
            SaveStateEntry e = machine.registry().find(h.idstr(), h.instanceId()).orElseThrow(() -> new StreamFormatException(
                    "unknown section " + section + " (id " + h.sectionId() + ")", at, section, null));
            if (e.isIterative()) {
                throw new StreamFormatException("FULL section for '" + h.idstr() + "', which is iterative", at);
            }
            if (h.versionId() > e.versionId()) {
                throw new StreamFormatException("section '" + h.idstr() + "' has version " + h.versionId()
                        + ", newer than this machine's " + e.versionId(), at);
            }
            try {
                staged.add(new StagedSection(e, VmStateCodec.decode(f, e.vmsd(), h.versionId()), at));
                checkFooter(f, h.sectionId());
            } catch (StreamFormatException ex) {
                throw ex.inSection(section);
            }
        }
    }

    /** Called with the BQL held: applies staged device sections in their stream order. */
    public void applyStaged(List<StagedSection> staged) throws IOException {
        machine.bql().assertHeld();
        for (StagedSection s : staged) {
            try {
                s.entry().applyState(s.value());
            } catch (VmStateException ex) {
                throw new StreamFormatException("device refused its state: " + ex.getMessage(), s.at(),
                        "'" + s.entry().idstr() + "' instance " + s.entry().instanceId(), ex);
            }
        }
    }

    private void loadPartEnd(MigrationFile f, long at) throws IOException {
        int sectionId = SectionHeader.readId(f);
        SaveStateEntry e = sections.get(sectionId);
        if (e == null) {
            throw new StreamFormatException("PART/END for unknown section id " + sectionId, at);
        }
        currentSection.set("'" + e.idstr() + "' instance " + e.instanceId());
        e.handlers().loadState(f, e.versionId());
        checkFooter(f, sectionId);
    }

    private void checkFooter(MigrationFile f, int sectionId) throws IOException {
        if (footersExpected) {
            SectionHeader.readFooter(f, sectionId);
        }
    }

    private Result processCommand(MigrationFile f, long at, boolean bqlHeld) throws IOException {
        int cmd = f.getBe16();
        int len = f.getBe16();
        currentSection.set("command " + QemuStream.commandName(cmd));
        switch (cmd) {
            case QemuStream.CMD_OPEN_RETURN_PATH -> {
                expectLength(cmd, len, 0, at);
                if (returnPathOpener == null) {
                    throw new StreamFormatException("OPEN_RETURN_PATH on a stream that has no return path", at);
                }
                returnPath = returnPathOpener.get();
                DeviceLoadContext d = devices;
                if (d != null) {
                    d.returnPathOpened();
                }
            }
            case QemuStream.CMD_PING -> {
                expectLength(cmd, len, 4, at);
                int value = f.getBe32();
                if (returnPath == null) {
                    throw new StreamFormatException("PING before OPEN_RETURN_PATH", at);
                }
                returnPath.sendPong(value);
            }
            case QemuStream.CMD_POSTCOPY_ADVISE -> postcopy(cmd, at).advise(PostcopyAdviseCommand.readPayload(f, len), at);
            case QemuStream.CMD_POSTCOPY_RAM_DISCARD ->
                    postcopy(cmd, at).discard(PostcopyRamDiscardCommand.readPayload(f, len), at);
            case QemuStream.CMD_POSTCOPY_LISTEN -> {
                expectLength(cmd, len, 0, at);
                postcopy(cmd, at).listen(this, mainStream, at);
            }
            case QemuStream.CMD_POSTCOPY_RUN -> {
                expectLength(cmd, len, 0, at);
                postcopy(cmd, at).run(at);
                return Result.QUIT;
            }
            case QemuStream.CMD_RECV_BITMAP -> postcopy(cmd, at).recvBitmap(RecvBitmapCommand.readPayload(f, len), at);
            case QemuStream.CMD_ENABLE_COLO -> {
                expectLength(cmd, len, 0, at);
                if (!coloAllowed) {
                    // QEMU's words for the same refusal
                    throw new StreamFormatException("ENABLE_COLO command come in migration stream, but x-colo capability"
                            + " is not set", at);
                }
                coloEnabled = true;
            }
            case QemuStream.CMD_SWITCHOVER_START -> {
                // QEMU 10: the source has stopped; devices start loading their final state.
                expectLength(cmd, len, 0, at);
                timeline.mark("switchover-start");
                DeviceLoadContext d = devices;
                if (d != null) {
                    d.switchoverStart(machine.registry().entries());
                }
            }
            case QemuStream.CMD_POSTCOPY_RESUME -> {
                expectLength(cmd, len, 0, at);
                postcopy(cmd, at).resume(at);
            }
            case QemuStream.CMD_PACKAGED -> {
                PackagedCommand p = PackagedCommand.readPayload(f, len);
                byte[] blob = p.readBlob(f);
                // The package is a stream of its own; its sections keep bqlHeld as it is.
                MigrationFile pkg = MigrationFile.ofBytes(blob);
                Result r = loadvmStateMain(pkg, bqlHeld);
                currentSection.remove();
                return r;
            }
            default -> throw new StreamFormatException("unsupported command " + QemuStream.commandName(cmd)
                    + " (length " + len + ")", at);
        }
        return Result.EOF;
    }

    private PostcopyHandler postcopy(int cmd, long at) throws StreamFormatException {
        if (postcopy == null) {
            throw new StreamFormatException("command " + QemuStream.commandName(cmd)
                    + " but postcopy is not possible here", at);
        }
        return postcopy;
    }

    private static void expectLength(int cmd, int len, int want, long at) throws StreamFormatException {
        if (len != want) {
            throw new StreamFormatException("command " + QemuStream.commandName(cmd) + " has length " + len
                    + ", expected " + want, at);
        }
    }

    /**
     * Reads and drops the vmdesc trailer after EOF, for a file whose end must be checked. A live
     * load does not call this: QEMU's loader stops at EOF and never waits for the trailer.
     */
    public void skipVmdesc(MigrationFile f) throws IOException {
        if (f.peekByte() != QemuStream.SECTION_VMDESCRIPTION) {
            return;
        }
        long at = f.position();
        f.getByte();
        int len = f.getBe32();
        if (len < 0 || len > MAX_VMDESC) {
            throw new StreamFormatException("vmdesc trailer length " + Integer.toUnsignedString(len) + " out of range", at);
        }
        f.skip(len);
    }

    public boolean hasReturnPath() {
        return returnPath != null;
    }
}
