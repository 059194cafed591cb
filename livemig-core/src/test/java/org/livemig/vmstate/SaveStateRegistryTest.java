package org.livemig.vmstate;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import org.junit.jupiter.api.Test;
import org.livemig.stream.MigrationFile;

class SaveStateRegistryTest {

    static final class Ram implements SaveVmHandlers {
        @Override
        public void saveSetup(MigrationFile f) {}

        @Override
        public boolean saveIterate(MigrationFile f) {
            return true;
        }

        @Override
        public void saveComplete(MigrationFile f) {}

        @Override
        public long pendingBytes() {
            return 0;
        }

        @Override
        public void loadState(MigrationFile f, int versionId) {}
    }

    @Test
    void sectionIdsFollowRegistrationOrderFromZero() {
        SaveStateRegistry r = new SaveStateRegistry();
        SaveStateEntry timer = r.registerDevice("timer", 0, TestDevice.VMSD, TestDevice.sample());
        Ram ram = new Ram();
        SaveStateEntry ramEntry = r.registerHandlers("ram", 0, 4, ram);
        SaveStateEntry dev1 = r.registerDevice("0000:00:01.0/dev", 0, TestDevice.VMSD, TestDevice.sample());

        assertThat(r.entries()).extracting(SaveStateEntry::sectionId).containsExactly(0, 1, 2);
        assertThat(r.entries()).containsExactly(timer, ramEntry, dev1);
        assertThat(timer.isIterative()).isFalse();
        assertThat(timer.vmsd()).isSameAs(TestDevice.VMSD);
        assertThat(timer.versionId()).isEqualTo(3);
        assertThat(timer.handlers()).isNull();
        assertThat(ramEntry.isIterative()).isTrue();
        assertThat(ramEntry.handlers()).isSameAs(ram);
        assertThat(ramEntry.opaque()).isSameAs(ram);
        assertThat(ramEntry.vmsd()).isNull();
        assertThat(ramEntry.versionId()).isEqualTo(4);
        assertThat(ramEntry.handlers().isActive()).isTrue();
        assertThat(ramEntry.sectionName()).isEqualTo("ram instance 0");

        assertThat(r.find("ram", 0)).contains(ramEntry);
        assertThat(r.find("ram", 1)).isEmpty();
        assertThat(r.bySectionId(2)).contains(dev1);
        assertThat(r.bySectionId(3)).isEmpty();
    }

    @Test
    void entriesSaveApplyAndCaptureTheirDevice() throws Exception {
        SaveStateRegistry r = new SaveStateRegistry();
        SaveStateEntry src = r.registerDevice("dev", 0, TestDevice.VMSD, TestDevice.sample());
        MigrationFile f = MigrationFile.toMemory();
        src.saveState(f, null);
        assertThat(java.util.HexFormat.of().formatHex(f.toByteArray())).isEqualTo(TestDevice.EXPECTED_HEX);

        TestDevice dst = new TestDevice();
        SaveStateEntry d = new SaveStateRegistry().registerDevice("dev", 0, TestDevice.VMSD, dst);
        d.applyState(src.captureState());
        dst.subNeeded = true;
        assertThat(d.captureState()).isEqualTo(src.captureState());

        SaveStateEntry ram = r.registerHandlers("ram", 0, 4, new Ram());
        assertThatThrownBy(ram::captureState).isInstanceOf(IllegalStateException.class)
                .hasMessageContaining("ram instance 0 is saved by handlers");
    }

    @Test
    void instancesOfOneIdstr() {
        SaveStateRegistry r = new SaveStateRegistry();
        r.registerDevice("dma", 0, TestDevice.VMSD, TestDevice.sample());
        SaveStateEntry any = r.registerDevice("dma", SaveStateRegistry.INSTANCE_ID_ANY, TestDevice.VMSD,
                TestDevice.sample());
        assertThat(any.instanceId()).isEqualTo(1);
        assertThat(r.registerDevice("pic", SaveStateRegistry.INSTANCE_ID_ANY, TestDevice.VMSD, TestDevice.sample())
                .instanceId()).isZero();
        assertThatThrownBy(() -> r.registerDevice("dma", 1, TestDevice.VMSD, TestDevice.sample()))
                .isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("dma instance 1 is already registered");
        assertThatThrownBy(() -> r.registerHandlers("x".repeat(256), 0, 1, new Ram()))
                .isInstanceOf(IllegalArgumentException.class);
        assertThat(r.entries()).hasSize(3);
    }
}
