package io.vblk.virtio.memory;

import io.vblk.aio.sys.FileIo;
import io.vblk.aio.sys.Mmap;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

/**
 * A memfd truncated after it was mapped: the next access raises SIGBUS, which the JVM reports as
 * an InternalError that {@link GuestMemoryFault} recognises (and no other internal error).
 */
class GuestMemoryFaultTest {
    @Test
    void anAccessToATruncatedMemfdIsAGuestMemoryFault() {
        int fd = Mmap.memfdCreate("fault", Mmap.MFD_CLOEXEC);
        assertThat(FileIo.ftruncate(fd, 2 * 4096)).isZero();
        long addr = Mmap.mmap(0, 2 * 4096, Mmap.PROT_READ | Mmap.PROT_WRITE, Mmap.MAP_SHARED, fd, 0);
        try {
            MemorySegment m = MemorySegment.ofAddress(addr).reinterpret(2 * 4096);
            m.set(ValueLayout.JAVA_BYTE, 4096, (byte) 1);
            assertThat(FileIo.ftruncate(fd, 0)).isZero();
            Throwable t = catchThrowable(() -> m.get(ValueLayout.JAVA_BYTE, 4096));
            assertThat(t).isInstanceOf(InternalError.class);
            assertThat(GuestMemoryFault.is(t)).isTrue();
            assertThat(GuestMemoryFault.reason("queue q0", t)).startsWith(GuestMemoryFault.REASON + " in queue q0: ");
            assertThat(GuestMemoryFault.is(new InternalError("something else"))).isFalse();
        } finally {
            Mmap.munmap(addr, 2 * 4096);
            FileIo.close(fd);
        }
    }
}
