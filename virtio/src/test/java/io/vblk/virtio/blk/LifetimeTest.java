package io.vblk.virtio.blk;

import io.vblk.drivers.DeviceLifetime;
import io.vblk.guest.BlkSlot;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import static io.vblk.virtio.queue.VirtioFeatures.bit;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * VIRTIO_BLK_T_GET_LIFETIME (virtio 1.2 section 5.2.6) through the mock guest: the reply is the
 * driver's estimate as {@code struct virtio_blk_lifetime}, "undefined" (all 0) when the host has
 * none; UNSUPP without VIRTIO_BLK_F_LIFETIME; IOERR when the guest leaves no room for the struct.
 */
@Timeout(20)
class LifetimeTest {
    private static MemDriver mem() {
        MemDriver d = new MemDriver(1 << 20, false, true, true, 1);
        d.mode = MemDriver.Mode.SYNC;
        return d;
    }

    @Test
    void replyCarriesTheDriversEstimateLittleEndian() {
        MemDriver drv = mem();
        drv.lifetime = new DeviceLifetime(2, 3, 11);
        try (BlkFixture f = new BlkFixture(drv)) {
            BlkSlot s = f.guest.getLifetime(6);
            GuestQueue.Done d = f.one();
            assertThat(d.status()).isEqualTo(BlkStatus.OK);
            assertThat(d.len()).as("6 data bytes and the status byte").isEqualTo(7);
            assertThat(GuestQueue.data(s)).containsExactly(2, 0, 3, 0, 11, 0);
        }
    }

    @Test
    void hostWithoutAnEstimateAnswersUndefined() {
        try (BlkFixture f = new BlkFixture(mem())) {
            BlkSlot s = f.guest.getLifetime(6);
            GuestQueue.Done d = f.one();
            assertThat(d.status()).isEqualTo(BlkStatus.OK);
            assertThat(GuestQueue.data(s)).containsExactly(0, 0, 0, 0, 0, 0);
        }
    }

    @Test
    void tooLittleRoomIsAnIoError() {
        MemDriver drv = mem();
        drv.lifetime = new DeviceLifetime(1, 1, 1);
        try (BlkFixture f = new BlkFixture(drv)) {
            f.guest.getLifetime(4);
            assertThat(f.one().status()).isEqualTo(BlkStatus.IOERR);
        }
    }

    @Test
    void withoutTheFeatureItIsUnsupported() {
        MemDriver probe = mem();
        long all;
        try (BlkFixture f = new BlkFixture(probe)) {
            all = f.dev.deviceFeatures();
        }
        assertThat(all & bit(BlkFeatures.LIFETIME)).as("offered").isNotZero();
        try (BlkFixture f = new BlkFixture(mem(), c -> { }, all & ~bit(BlkFeatures.LIFETIME))) {
            f.guest.getLifetime(6);
            assertThat(f.one().status()).isEqualTo(BlkStatus.UNSUPP);
        }
    }

    @Test
    void outOfRangeValuesAreReportedUndefined() {
        assertThat(new DeviceLifetime(4, 12, -1)).isEqualTo(DeviceLifetime.UNDEFINED);
    }
}
