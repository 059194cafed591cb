package org.livemig.memory.postcopy;

import static org.assertj.core.api.Assertions.assertThat;

import org.junit.jupiter.api.Test;

/**
 * The ioctl numbers and struct layouts against the values of Linux's
 * {@code include/uapi/linux/userfaultfd.h} as a C compiler computes them on x86_64
 * ({@code printf("%lx", UFFDIO_COPY)}, {@code sizeof}, {@code offsetof}).
 */
class UserfaultfdAbiTest {

    @Test
    void ioctlNumbers() {
        assertThat(Userfaultfd.UFFDIO_API).isEqualTo(0xC018AA3FL);
        assertThat(Userfaultfd.UFFDIO_REGISTER).isEqualTo(0xC020AA00L);
        assertThat(Userfaultfd.UFFDIO_UNREGISTER).isEqualTo(0x8010AA01L);
        assertThat(Userfaultfd.UFFDIO_WAKE).isEqualTo(0x8010AA02L);
        assertThat(Userfaultfd.UFFDIO_COPY).isEqualTo(0xC028AA03L);
        assertThat(Userfaultfd.UFFDIO_ZEROPAGE).isEqualTo(0xC020AA04L);
        assertThat(Userfaultfd.USERFAULTFD_IOC_NEW).isEqualTo(0xAA00L);
    }

    @Test
    void structLayouts() {
        assertThat(Userfaultfd.MSG.byteSize()).isEqualTo(32);
        assertThat(Userfaultfd.API.byteSize()).isEqualTo(24);
        assertThat(Userfaultfd.REGISTER.byteSize()).isEqualTo(32);
        assertThat(Userfaultfd.RANGE.byteSize()).isEqualTo(16);
        assertThat(Userfaultfd.COPY.byteSize()).isEqualTo(40);
        assertThat(Userfaultfd.ZEROPAGE.byteSize()).isEqualTo(32);
        assertThat(Userfaultfd.MSG_EVENT).isEqualTo(0);
        assertThat(Userfaultfd.MSG_PF_FLAGS).isEqualTo(8);
        assertThat(Userfaultfd.MSG_PF_ADDRESS).isEqualTo(16);
        assertThat(Userfaultfd.REGISTER_MODE).isEqualTo(16);
        assertThat(Userfaultfd.REGISTER_IOCTLS).isEqualTo(24);
        assertThat(Userfaultfd.COPY_MODE).isEqualTo(24);
        assertThat(Userfaultfd.COPY_COPY).isEqualTo(32);
        assertThat(Userfaultfd.ZEROPAGE_MODE).isEqualTo(16);
        assertThat(Userfaultfd.ZEROPAGE_ZEROPAGE).isEqualTo(24);
        assertThat(Userfaultfd.EVENT_PAGEFAULT).isEqualTo(0x12);
    }

    @Test
    void syscallNumberOnThisArchitecture() {
        String arch = System.getProperty("os.arch");
        if (arch.equals("amd64")) {
            assertThat(Userfaultfd.syscallNumber()).isEqualTo(323);
        } else if (arch.equals("aarch64")) {
            assertThat(Userfaultfd.syscallNumber()).isEqualTo(282);
        } else {
            assertThat(Userfaultfd.syscallNumber()).isEqualTo(-1);
        }
    }
}
