package io.vblk.guest;

import io.vblk.drivers.nullblk.NullDriver;
import io.vblk.virtio.blk.BlkDeviceConfig;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import static io.vblk.guest.BlkWireLayout.S_OK;
import static io.vblk.guest.GuestFeatures.F_EVENT_IDX;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * Notification suppression and batching as the guest sees them: how many call eventfd writes
 * arrive (the eventfd counter adds one per write) for what the guest asked.
 */
@Timeout(30)
class GuestNotificationTest {
    private GuestRig rig;

    @AfterEach
    void tearDown() {
        if (rig != null) {
            rig.close();
        }
    }

    @Test
    void withEventIdxASecondCompletionIsNotNotifiedWhenTheGuestAsksForNone() {
        rig = GuestRig.nullDevice(NullDriver.Completion.SYNC, new BlkDeviceConfig(), 1,
                GuestBlkDriver.Options.defaults().withSlots(4));
        assertThat(rig.guest.negotiated(F_EVENT_IDX)).isTrue();
        GuestBlkQueue q = rig.q(0);
        q.consumeInterrupts();

        // used_event is 0: the device must notify when it writes used entry 0 (2.7.10).
        BlkSlot a = q.acquire();
        q.postRead(a, 0, 4096, 1);
        q.kick();
        assertThat(rig.pollFor(0, 1).get(0).status()).isEqualTo(S_OK);
        rig.settle(0);
        assertThat(q.consumeInterrupts()).isEqualTo(1);

        // The guest leaves used_event at 0: entry 1 does not cross it, so no notification.
        BlkSlot b = q.acquire();
        q.postRead(b, 8, 4096, 1);
        q.kick();
        assertThat(rig.pollFor(0, 1).get(0).status()).isEqualTo(S_OK);
        rig.settle(0);
        assertThat(q.consumeInterrupts()).as("notifications for a completion the guest asked none for").isZero();

        // Asking again (used_event = 2) brings the next one back.
        assertThat(q.enableInterrupts()).isTrue();
        BlkSlot c = q.acquire();
        q.postRead(c, 16, 4096, 1);
        q.kick();
        assertThat(rig.pollFor(0, 1).get(0).status()).isEqualTo(S_OK);
        rig.settle(0);
        assertThat(q.consumeInterrupts()).isEqualTo(1);
    }

    @Test
    void withoutEventIdxTheNoInterruptFlagSuppressesNotifications() {
        rig = GuestRig.nullDevice(NullDriver.Completion.SYNC, new BlkDeviceConfig(), 1,
                GuestBlkDriver.Options.defaults().withSlots(4).withoutFeatures(F_EVENT_IDX));
        assertThat(rig.guest.negotiated(F_EVENT_IDX)).isFalse();
        GuestBlkQueue q = rig.q(0);
        q.consumeInterrupts();
        q.disableInterrupts();
        BlkSlot a = q.acquire();
        q.postRead(a, 0, 4096, 1);
        q.kick();
        rig.pollFor(0, 1);
        rig.settle(0);
        assertThat(q.consumeInterrupts()).as("VIRTQ_AVAIL_F_NO_INTERRUPT set").isZero();

        assertThat(q.enableInterrupts()).isTrue();
        BlkSlot b = q.acquire();
        q.postRead(b, 8, 4096, 1);
        q.kick();
        rig.pollFor(0, 1);
        rig.settle(0);
        assertThat(q.consumeInterrupts()).isEqualTo(1);
    }

    /**
     * N requests made available with one kick are taken in one pass; their completions are
     * notified with one call eventfd write (the defer-call section batches them). Without
     * EVENT_IDX, so that every completion would otherwise want its own notification.
     */
    @ParameterizedTest
    @EnumSource(NullDriver.Completion.class)
    void completionsOfOnePassAreNotifiedWithOneEventfdWrite(NullDriver.Completion mode) {
        assertThat(eventfdWritesForOneKick(mode, new BlkDeviceConfig().submitBatch(0), 32))
                .as("call eventfd writes for 32 completions of one pass").isEqualTo(1);
    }

    /**
     * With the default submit-batch a pass ends its section every that many requests: at most one
     * call eventfd write per batch, even for a guest that wants every completion notified.
     */
    @ParameterizedTest
    @EnumSource(NullDriver.Completion.class)
    void aSubmitBatchNeedsAtMostOneEventfdWrite(NullDriver.Completion mode) {
        assertThat(eventfdWritesForOneKick(mode, new BlkDeviceConfig(), 32)).as("call eventfd writes for 32 completions")
                .isBetween(1L, 32L / BlkDeviceConfig.DEFAULT_SUBMIT_BATCH);
    }

    /** Posts {@code n} reads without EVENT_IDX, kicks once, and counts the call eventfd writes. */
    private long eventfdWritesForOneKick(NullDriver.Completion mode, BlkDeviceConfig cfg, int n) {
        rig = GuestRig.nullDevice(mode, cfg, 1,
                GuestBlkDriver.Options.defaults().withSlots(n).withoutFeatures(F_EVENT_IDX));
        GuestBlkQueue q = rig.q(0);
        q.consumeInterrupts();
        for (int i = 0; i < n; i++) {
            q.postRead(q.acquire(), 8L * i, 4096, 1);
        }
        assertThat(q.kick()).isTrue();
        assertThat(rig.pollFor(0, n)).allSatisfy(d -> assertThat(d.status()).isEqualTo(S_OK));
        rig.settle(0);
        return q.consumeInterrupts();
    }

    @Test
    void anIdleDeviceAsksForTheNextKickAndABatchNeedsOnlyOne() {
        rig = GuestRig.nullDevice(NullDriver.Completion.SYNC, new BlkDeviceConfig(), 1,
                GuestBlkDriver.Options.defaults().withSlots(8));
        GuestBlkQueue q = rig.q(0);
        for (int round = 0; round < 3; round++) {
            for (int i = 0; i < 8; i++) {
                q.postRead(q.acquire(), 8L * i, 4096, 1);
            }
            // 2.7.10: an idle device has avail_event = the next avail index: this batch crosses it.
            rig.settle(0);
            assertThat(q.vring().availEvent()).isEqualTo((q.vring().availIdx() - 8) & 0xffff);
            assertThat(q.kick()).isTrue();
            for (GuestRig.Done d : rig.await(0, 8)) {
                assertThat(d.status()).isEqualTo(S_OK);
                q.release(d.slot());
            }
        }
        assertThat(q.kicks()).isEqualTo(3);
        assertThat(q.kicksSuppressed()).isZero();
    }
}
