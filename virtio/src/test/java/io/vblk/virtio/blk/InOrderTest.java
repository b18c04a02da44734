package io.vblk.virtio.blk;

import io.vblk.guest.BlkSlot;
import io.vblk.virtio.queue.VirtioFeatures;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.ArrayList;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * VIRTIO_F_IN_ORDER on both rings: a driver whose requests complete newest first
 * ({@link MemDriver.Mode#ASYNC_REVERSED}) still sees them used in the order it made them
 * available once IN_ORDER is negotiated — and in completion order without it (the control that
 * shows the test can fail).
 */
@Timeout(20)
class InOrderTest {
    private static List<BlkSlot> run(boolean packed, boolean inOrder, List<BlkSlot> posted) {
        GuestQueue.PACKED.set(packed);
        GuestQueue.IN_ORDER.set(inOrder);
        MemDriver drv = new MemDriver(1 << 20);
        drv.mode = MemDriver.Mode.ASYNC_REVERSED;
        try (BlkFixture f = new BlkFixture(drv)) {
            assertThat(VirtioFeatures.has(f.dev.driverFeatures(), VirtioFeatures.IN_ORDER)).isEqualTo(inOrder);
            assertThat(VirtioFeatures.has(f.dev.driverFeatures(), VirtioFeatures.RING_PACKED)).isEqualTo(packed);
            List<BlkSlot> used = new ArrayList<>();
            for (int round = 0; round < 3; round++) {
                for (int i = 0; i < 8; i++) {
                    // Sectors far apart: no two requests merge into one driver request.
                    posted.add(f.guest.read(64L * i + 8 * round, 512));
                }
                f.guest.kick();
                f.settle();
                for (GuestQueue.Done d : f.guest.reap()) {
                    assertThat(d.status()).isEqualTo(BlkStatus.OK);
                    used.add(d.slot());
                }
            }
            assertThat(used).hasSize(24);
            assertThat(f.stats().inFlight()).isZero();
            return used;
        } finally {
            GuestQueue.PACKED.remove();
            GuestQueue.IN_ORDER.remove();
        }
    }

    @ParameterizedTest(name = "packed={0}")
    @ValueSource(booleans = {false, true})
    void buffersAreUsedInTheOrderTheyWereMadeAvailable(boolean packed) {
        List<BlkSlot> posted = new ArrayList<>();
        assertThat(run(packed, true, posted)).containsExactlyElementsOf(posted);
    }

    @ParameterizedTest(name = "packed={0}")
    @ValueSource(booleans = {false, true})
    void withoutInOrderTheyAreUsedAsTheyComplete(boolean packed) {
        List<BlkSlot> posted = new ArrayList<>();
        List<BlkSlot> used = run(packed, false, posted);
        assertThat(used).containsExactlyInAnyOrderElementsOf(posted);
        assertThat(used).isNotEqualTo(posted);
    }
}
