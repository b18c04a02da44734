package io.vblk.guest;

import io.vblk.virtio.memory.GuestMemory;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** The guest's RAM in its three shapes: one region, several regions with holes, laid over borrowed memory. */
@Timeout(10)
class GuestRamTest {
    @Test
    void regionsFillInOrderAndAPieceNeverStraddlesTwo() {
        try (GuestRam ram = GuestRam.ofArenaRegions("r", Arena.ofShared(), 0x1000, 0x2000, 0x3000, 0x1000,
                0x10000, 0x1000)) {
            assertThat(ram.regionCount()).isEqualTo(3);
            assertThat(ram.allocate(0x1800, 16)).isEqualTo(0x1000);
            // 0x1000 bytes do not fit the 0x800 left in region 0: the next region, though adjacent.
            assertThat(ram.allocate(0x1000, 16)).isEqualTo(0x3000);
            assertThat(ram.allocate(16, 16)).isEqualTo(0x10000);
            assertThatThrownBy(() -> ram.allocate(0x1000, 16)).hasMessageContaining("full");
            // A view never runs from one region into the next, adjacent or not.
            assertThatThrownBy(() -> ram.segment(0x2ff0, 32)).isInstanceOf(IndexOutOfBoundsException.class);
            assertThat(ram.contains(0x5000, 1)).as("the hole").isFalse();
            assertThat(ram.contains(0x10fff, 1)).isTrue();
            assertThat(ram.contains(0x10fff, 2)).isFalse();
            GuestMemory m = ram.guestMemory();
            try {
                assertThat(m.regionCount()).isEqualTo(3);
                assertThat(m.hostAddress(0x5000, 1)).as("no guest memory in the hole").isZero();
                ram.segment(0x3008, 8).set(ValueLayout.JAVA_LONG_UNALIGNED, 0, 0x1122334455667788L);
                assertThat(m.translate(0x3008, 8).get(ValueLayout.JAVA_LONG_UNALIGNED, 0))
                        .as("the device sees what the guest wrote").isEqualTo(0x1122334455667788L);
            } finally {
                m.release();
            }
        }
    }

    @Test
    void rewindHandsOutTheSameBuffersAgain() {
        try (GuestRam ram = GuestRam.ofArena("r", Arena.ofShared(), GuestRam.DEFAULT_GPA_BASE, 1 << 16)) {
            ram.allocate(100, 64);
            long mark = ram.mark();
            long a = ram.allocate(4096, 4096);
            long b = ram.allocate(512, 16);
            ram.rewind(mark);
            assertThat(ram.allocate(4096, 4096)).isEqualTo(a);
            assertThat(ram.allocate(512, 16)).isEqualTo(b);
            assertThatThrownBy(() -> ram.rewind(0x10)).hasMessageContaining("no mark");
        }
    }

    @Test
    void wrappedMemoryIsLaidOverAndNeverFreedByTheRam() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment owned = arena.allocate(1 << 16, 4096);
            GuestRam ram = GuestRam.wrap("fe", owned, 0);
            long ring = ram.allocate(256, 16);
            assertThat(ring).isZero();
            GuestVring v = GuestVring.allocate(ram, 8);
            v.beginChain();
            v.addBuffer(0x8000, 512, true);
            int head = v.commitChain(1);
            v.publish();
            ram.close();
            // The owner's memory is still mapped and holds the ring the guest wrote.
            assertThat(owned.get(ValueLayout.JAVA_SHORT_UNALIGNED, v.availGpa() + 2)).isEqualTo((short) 1);
            assertThat(owned.get(ValueLayout.JAVA_SHORT_UNALIGNED, v.availGpa() + 4)).isEqualTo((short) head);
        }
    }
}
