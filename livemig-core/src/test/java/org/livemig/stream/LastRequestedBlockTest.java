package org.livemig.stream;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.RepeatedTest;
import org.junit.jupiter.api.RepetitionInfo;
import org.junit.jupiter.api.Test;
import org.livemig.stream.ReturnPathMessage.PageRequest;
import org.livemig.stream.ReturnPathMessage.ReqPages;
import org.livemig.stream.ReturnPathMessage.ReqPagesId;

class LastRequestedBlockTest {

    @Test
    void namesTheBlockOnlyWhenItChanges() {
        LastRequestedBlock t = new LastRequestedBlock();
        assertThat(t.request("pc.ram", 0, 4096)).isEqualTo(new ReqPagesId("pc.ram", 0, 4096));
        assertThat(t.request("pc.ram", 8192, 4096)).isEqualTo(new ReqPages(8192, 4096));
        assertThat(t.request("pc.bios", 0, 4096)).isEqualTo(new ReqPagesId("pc.bios", 0, 4096));
        assertThat(t.request("pc.ram", 4096, 4096)).isEqualTo(new ReqPagesId("pc.ram", 4096, 4096));
        assertThat(t.last()).isEqualTo("pc.ram");
        t.reset();
        assertThat(t.request("pc.ram", 0, 4096)).isInstanceOf(ReqPagesId.class);
    }

    @Test
    void reqPagesBeforeAnyIdIsAnError() {
        LastRequestedBlock t = new LastRequestedBlock();
        assertThatThrownBy(() -> t.blockOf(new ReqPages(0, 4096), 1234)).isInstanceOf(StreamFormatException.class)
                .hasMessageContaining("REQ_PAGES before any REQ_PAGES_ID")
                .hasMessageContaining("offset 1234");
    }

    /** What the destination's tracker writes, the source's tracker resolves to the same blocks, through the codec. */
    @RepeatedTest(50)
    void bothEndsAgreeThroughTheWire(RepetitionInfo rep) throws IOException {
        long seed = 0xB10C + rep.getCurrentRepetition();
        SplittableRandom r = new SplittableRandom(seed);
        String[] blocks = {"pc.ram", "pc.bios", "pc.rom", "mem0"};
        LastRequestedBlock dst = new LastRequestedBlock();
        MigrationFile w = MigrationFile.toMemory();
        List<String> wanted = new ArrayList<>();
        int n = 1 + r.nextInt(100);
        for (int i = 0; i < n; i++) {
            String b = blocks[r.nextInt(r.nextBoolean() ? 1 : blocks.length)];
            wanted.add(b + "@" + i);
            ReturnPathCodec.write(w, dst.request(b, (long) i << 12, 4096));
        }
        MigrationFile f = MigrationFile.ofBytes(w.toByteArray());
        LastRequestedBlock src = new LastRequestedBlock();
        List<String> got = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            long at = f.position();
            PageRequest req = (PageRequest) ReturnPathCodec.read(f);
            got.add(src.blockOf(req, at) + "@" + (req.start() >>> 12));
        }
        assertThat(got).as("seed %d", seed).isEqualTo(wanted);
    }
}
