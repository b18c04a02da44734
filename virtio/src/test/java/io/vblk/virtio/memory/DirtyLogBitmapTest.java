package io.vblk.virtio.memory;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** The dirty-log bitmap: vhost's bit layout, ranges across pages and regions, size checks, concurrent marks. */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class DirtyLogBitmapTest {
    private final Arena arena = Arena.ofShared();

    /** Two adjacent regions: [0x100000, +1 MiB) and [0x200000, +1 MiB), mapped separately. */
    private GuestMemory memory() {
        return GuestMemory.of(List.of(
                new MemoryRegion(0x10_0000, 1 << 20, 0x10_0000, arena.allocate(1 << 20, 4096)),
                new MemoryRegion(0x20_0000, 1 << 20, 0x20_0000, arena.allocate(1 << 20, 4096))));
    }

    @Test
    void pageBitsFollowVhostsLayout() {
        GuestMemory m = memory();
        assertThat(DirtyLog.bytesFor(m)).as("768 pages: 12 u64 words").isEqualTo(96);
        MemorySegment bits = arena.allocate(96, 8);
        DirtyLog log = DirtyLog.of(bits, m);
        log.markGpa(0x10_0000 + 4095, 2); // last byte of page 256, first of page 257
        assertThat(bits.get(ValueLayout.JAVA_LONG, 32)).isEqualTo(0b11L); // word 4 = pages 256..319
        // libvhost-user's reading of the same bits: byte page / 8, bit page % 8.
        assertThat(bits.get(ValueLayout.JAVA_BYTE, 256 / 8)).isEqualTo((byte) 0b11);
        assertThat(log.isDirty(0x10_0000)).isTrue();
        assertThat(log.isDirty(0x10_2000)).isFalse();
        log.markGpa(0x10_5000, 0);
        assertThat(log.isDirty(0x10_5000)).as("an empty range marks nothing").isFalse();
    }

    @Test
    void hostRangesAreTranslatedAcrossRegions() {
        GuestMemory m = memory();
        MemorySegment bits = arena.allocate(96, 8);
        DirtyLog log = DirtyLog.of(bits, m);
        // The last 100 bytes of region 0 and the first 100 of region 1 — contiguous in guest space, not on the host.
        long end0 = m.region(0).host().address() + (1 << 20) - 100;
        log.markHost(end0, 100);
        log.markHost(m.region(1).host().address(), 100);
        assertThat(log.isDirty(0x1F_F000)).isTrue();
        assertThat(log.isDirty(0x20_0000)).isTrue();
        assertThat(log.isDirty(0x1F_E000)).isFalse();
        assertThat(log.isDirty(0x20_1000)).isFalse();
        log.markHost(0x1234, 10); // not guest memory: ignored
        long set = 0;
        for (int w = 0; w < 12; w++) {
            set += Long.bitCount(bits.get(ValueLayout.JAVA_LONG, w * 8L));
        }
        assertThat(set).isEqualTo(2);
    }

    @Test
    void usedRingWritesGoToTheLogAddressOnlyWithFLog() {
        GuestMemory m = memory();
        MemorySegment bits = arena.allocate(96, 8);
        DirtyLog log = DirtyLog.of(bits, m);
        log.markUsed(2, 2);
        assertThat(bits.get(ValueLayout.JAVA_LONG, 0) | bits.get(ValueLayout.JAVA_LONG, 32)).isZero();
        DirtyLog ring = log.forUsedRing(0x15_0000);
        assertThat(ring.logsUsedRing()).isTrue();
        ring.markUsed(4 + 8 * 600, 8); // element 600 of a large ring: offset 0x12c4, in the second page
        assertThat(ring.isDirty(0x15_1000)).isTrue();
        assertThat(ring.isDirty(0x15_0000)).isFalse();
    }

    @Test
    void aLogThatDoesNotCoverMemoryOrIsMisalignedIsRefused() {
        GuestMemory m = memory();
        assertThatThrownBy(() -> DirtyLog.of(arena.allocate(88, 8), m))
                .hasMessageContaining("dirty log of 88 bytes does not cover guest memory (it needs 96 bytes");
        assertThatThrownBy(() -> DirtyLog.of(arena.allocate(128, 8).asSlice(4, 96), m))
                .hasMessageContaining("is not 8-byte aligned");
    }

    @Test
    void concurrentMarksInTheSameWordsLoseNoBit() throws Exception {
        GuestMemory m = memory();
        MemorySegment bits = arena.allocate(96, 8);
        DirtyLog log = DirtyLog.of(bits, m);
        int threads = 4;
        List<Thread> ts = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            int me = t;
            ts.add(Thread.ofPlatform().start(() -> {
                for (int round = 0; round < 200; round++) {
                    for (int p = me; p < 512; p += threads) { // pages 256..767, interleaved: every word is shared
                        log.markGpa(0x10_0000 + (long) p * 4096, 1);
                    }
                }
            }));
        }
        for (Thread t : ts) {
            t.join();
        }
        for (int p = 256; p < 768; p++) {
            assertThat(log.isDirty((long) p * 4096)).as("page %d", p).isTrue();
        }
    }
}
