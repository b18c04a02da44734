package io.vblk.virtio.blk;

import io.vblk.guest.BlkSlot;
import io.vblk.guest.GuestPackedVring;
import io.vblk.virtio.queue.VirtioFeatures;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.ArrayList;
import java.util.List;

import static io.vblk.virtio.queue.VirtioFeatures.bit;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * Every test of {@link BlkDeviceTest} again with device and guest on a packed ring (virtio 1.2
 * section 2.8): the device code is the same, only the ring behind {@code VirtQueue} differs. The
 * tests that look at split-ring fields (used_event, avail flags, used idx, avail_event, forged
 * split descriptors) are replaced by their packed-ring counterparts (event suppression
 * structures, used descriptors, forged packed descriptors).
 */
@Timeout(20)
class PackedBlkDeviceTest extends BlkDeviceTest {
    @BeforeEach
    void packed() {
        GuestQueue.PACKED.set(true);
    }

    @AfterEach
    void split() {
        GuestQueue.PACKED.remove();
    }

    /** vhost-user's packed resume point: index | wrap << 15, avail half and used half equal. */
    @Override
    int resumePoint(int chains, int descs) {
        int half = (chains * descs) % 64 | ((chains * descs / 64) % 2 == 0 ? 0x8000 : 0);
        return half | half << 16;
    }

    static GuestPackedVring ring(BlkFixture f) {
        assertThat(f.guest.ring.packed()).as("the fixture runs on a packed ring").isTrue();
        return (GuestPackedVring) f.guest.ring;
    }

    @Test
    void fixtureNegotiatedThePackedRing() {
        try (BlkFixture f = new BlkFixture(mem(MIB))) {
            assertThat(VirtioFeatures.has(f.dev.driverFeatures(), VirtioFeatures.RING_PACKED)).isTrue();
            ring(f);
        }
    }

    @Override
    @Test
    void eventIdxSuppressesTheNotificationTheGuestDidNotAskFor() {
        try (BlkFixture f = new BlkFixture(mem(MIB))) {
            GuestPackedVring v = ring(f);
            f.guest.takeCalls();
            // 2.8.10 DESC: "notify me when the used descriptor at my next read slot is written".
            v.setDriverEvent(v.usedState(), GuestPackedVring.EVENT_DESC);
            f.guest.read(0, 512);
            assertThat(f.one().status()).isEqualTo(BlkStatus.OK);
            assertThat(f.guest.takeCalls()).isEqualTo(1);
            // The event stays at slot 0: the next used descriptor (slot 3) is past it, no notification.
            f.guest.read(0, 512);
            assertThat(f.one().status()).isEqualTo(BlkStatus.OK);
            assertThat(f.guest.takeCalls()).as("EVENT_IDX: second completion silent").isZero();
            assertThat(f.dev.notifier(0).suppressed()).isEqualTo(1);
            v.setDriverEvent(v.usedState(), GuestPackedVring.EVENT_DESC);
            f.guest.read(0, 512);
            assertThat(f.one().status()).isEqualTo(BlkStatus.OK);
            assertThat(f.guest.takeCalls()).isEqualTo(1);
        }
    }

    /**
     * As on the split ring, whose used_event starts at 0 ("notify when the first used element is
     * written"): the packed guest asks for the descriptor-specific event at its first used slot.
     * A zeroed driver event structure would mean ENABLE, a notification for every batch (2.8.10).
     */
    @Override
    @Test
    void syncCompletionsInsideTheKickPassNotifyOnce() {
        try (BlkFixture f = new BlkFixture(mem(MIB), c -> c.merge(false), -1)) {
            GuestPackedVring v = ring(f);
            v.setDriverEvent(v.usedState(), GuestPackedVring.EVENT_DESC);
            f.guest.takeCalls();
            for (int i = 0; i < 10; i++) {
                f.guest.write(i * 16, pattern(512, i));
            }
            f.guest.getId(20);
            f.guest.post(99, 0, 0);
            List<GuestQueue.Done> done = f.kickAndReap();
            assertThat(done).hasSize(12);
            assertThat(f.guest.takeCalls()).isEqualTo(1);
            assertThat(f.dev.notifier(0).writes()).isEqualTo(1);
        }
    }

    @Override
    @Test
    void noInterruptFlagSuppressesWithoutEventIdx() {
        long features = new BlkDeviceConfigProbe().features(mem(MIB)) & ~bit(VirtioFeatures.RING_EVENT_IDX);
        try (BlkFixture f = new BlkFixture(mem(MIB), c -> { }, features)) {
            GuestPackedVring v = ring(f);
            f.guest.takeCalls();
            v.setDriverEvent(0, GuestPackedVring.EVENT_DISABLE);
            f.guest.read(0, 512);
            assertThat(f.one().status()).isEqualTo(BlkStatus.OK);
            assertThat(f.guest.takeCalls()).isZero();
            v.setDriverEvent(0, GuestPackedVring.EVENT_ENABLE);
            f.guest.read(0, 512);
            assertThat(f.one().status()).isEqualTo(BlkStatus.OK);
            assertThat(f.guest.takeCalls()).isEqualTo(1);
        }
    }

    @Override
    @Test
    void kicksAreSuppressedWhileProcessingAndReenabledAfter() {
        try (BlkFixture f = new BlkFixture(mem(MIB))) {
            GuestPackedVring v = ring(f);
            f.guest.read(0, 512);
            f.guest.read(8, 512);
            f.guest.read(16, 512);
            assertThat(f.kickAndReap()).hasSize(3);
            // 2.8.10 with EVENT_IDX: kick when the descriptor at slot 9 (wrap 1) is made available.
            assertThat(v.availState()).isEqualTo(9 | 0x8000);
            assertThat(v.deviceEvent()).isEqualTo((9 | 0x8000) | GuestPackedVring.EVENT_DESC << 16);
        }
    }

    @Override
    @Test
    void missingStatusByteNeedsReset() {
        try (BlkFixture f = new BlkFixture(mem(MIB))) {
            List<String> heard = new ArrayList<>();
            f.dev.onNeedsReset(() -> heard.add(f.dev.needsResetReason()));
            BlkSlot s = f.guest.beginFramed(BlkRequestType.IN, 0, 0);
            f.guest.addBuffer(s.hdrGpa(), 16, false);
            f.guest.commitFramed(s, -1, 0);
            assertThat(f.kickAndReap()).isEmpty();
            assertThat(f.guest.ring.hasUsed()).as("nothing published").isFalse();
            assertThat(f.dev.needsResetReason()).contains("MISSING_STATUS").contains("5.2.6");
            assertThat(heard).hasSize(1);
            f.guest.read(0, 512);
            assertThat(f.kickAndReap()).isEmpty();
        }
    }

    @Override
    @Test
    void ringViolationNeedsResetAndRequestsAlreadyTakenCompleteUnpublished() {
        MemDriver drv = mem(MIB);
        drv.mode = MemDriver.Mode.HOLD;
        try (BlkFixture f = new BlkFixture(drv)) {
            GuestPackedVring v = ring(f);
            f.guest.read(0, 512); // slots 0..2
            f.guest.kick();
            f.settle();
            assertThat(f.stats().inFlight()).isEqualTo(1);
            // A chain that never ends: every slot says NEXT, the head (slot 3) made available last.
            long buf = f.ram.allocate(16, 16);
            for (int i = 63; i >= 3; i--) {
                v.forgeDescriptor(i, buf, 16, 0, GuestPackedVring.F_NEXT | (i == 3 ? GuestPackedVring.F_AVAIL : 0));
            }
            for (int i = 0; i < 3; i++) {
                v.forgeDescriptor(i, buf, 16, 0, GuestPackedVring.F_NEXT);
            }
            f.guest.kick();
            f.settle();
            assertThat(f.dev.needsResetReason()).contains("CHAIN_LOOP").contains("2.8.6");
            drv.channels.get(0).releaseHeld();
            f.settle();
            assertThat(f.stats().inFlight()).isZero();
            assertThat(f.guest.reap()).isEmpty();
            assertThat(v.hasUsed()).isFalse();
            // The device stopped before the bad chain (avail slot 3, wrap 1); nothing was used.
            assertThat(f.stop()).isEqualTo((3 | 0x8000) | 0x8000 << 16);
            f.dev.reset();
            assertThat(f.dev.needsReset()).isFalse();
        }
    }
}
