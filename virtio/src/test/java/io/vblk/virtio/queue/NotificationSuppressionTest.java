package io.vblk.virtio.queue;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import static io.vblk.virtio.queue.DescriptorLayout.F_WRITE;
import static io.vblk.virtio.queue.SplitQueueTest.ALL;
import static io.vblk.virtio.queue.SplitQueueTest.NO_EVENT_IDX;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * Step tests of kick suppression (virtio 1.2 section 2.7.10): the device switches guest kicks off
 * while it processes or polls, and switching them back on re-reads the avail index, so a buffer
 * the driver adds just as the device re-enables is never left without a kick or a pass. Each step
 * plays the driver with the mock guest's own kick decision (Linux virtqueue_kick_prepare).
 */
@Timeout(10)
class NotificationSuppressionTest {
    QueueGuest g;
    final SplitQueue q = new SplitQueue("q0");
    final DescriptorChain c = new DescriptorChain();

    @AfterEach
    void close() {
        if (g != null) {
            g.close();
        }
    }

    void start(long features) {
        g = new QueueGuest(8);
        g.v.setEventIdx(features == ALL);
        assertThat(q.start(g.v.layout(), g.memory, features, SplitQueue.MAX_SIZE)).as(q.brokenReason()).isTrue();
    }

    /** The driver adds one chain, publishes, and tells whether it would kick. */
    boolean driverAdds() {
        g.v.beginChain();
        g.v.addBuffer(g.alloc(16), 16, true);
        g.v.commitChain(0);
        g.v.publish();
        return g.v.kickNeeded();
    }

    @Test
    void flagsVariantSuppressesKicksAndReEnableFindsTheBufferAddedMeanwhile() {
        start(NO_EVENT_IDX);
        assertThat(driverAdds()).as("kicks on after start").isTrue();
        q.disableNotification();
        assertThat(g.v.usedFlags() & UsedRingLayout.F_NO_NOTIFY).isEqualTo(UsedRingLayout.F_NO_NOTIFY);
        assertThat(q.notificationsDisabled()).isTrue();
        assertThat(q.pop(c)).isTrue();
        // The driver adds while the device is about to sleep: no kick ...
        assertThat(driverAdds()).isFalse();
        // ... so the re-enable must see the buffer itself.
        assertThat(q.enableNotification()).isTrue();
        assertThat(g.v.usedFlags()).isZero();
        assertThat(q.pop(c)).isTrue();
        assertThat(q.enableNotification()).as("nothing left").isFalse();
        assertThat(driverAdds()).as("kicks back on").isTrue();
    }

    @Test
    void eventIdxVariantParksAvailEventBehindTheDriverWindow() {
        start(ALL);
        assertThat(g.v.usedFlags()).isZero();
        q.disableNotification();
        // 2.7.10: with EVENT_IDX the flags stay 0; avail_event is parked instead.
        assertThat(g.v.usedFlags()).isZero();
        assertThat(g.v.availEvent()).isEqualTo(0xffff);
        for (int i = 0; i < 3; i++) {
            assertThat(driverAdds()).as("add %d while kicks are off", i).isFalse();
        }
        assertThat(q.enableNotification()).as("re-check sees the three").isTrue();
        assertThat(g.v.availEvent()).isZero();
        q.disableNotification();
        for (int i = 0; i < 3; i++) {
            assertThat(q.pop(c)).isTrue();
        }
        assertThat(driverAdds()).isFalse();
        assertThat(q.enableNotification()).isTrue();
        assertThat(g.v.availEvent()).isEqualTo(3);
        assertThat(q.pop(c)).isTrue();
        assertThat(q.enableNotification()).isFalse();
        assertThat(driverAdds()).as("kicks back on: avail idx passes avail_event").isTrue();
    }

    @Test
    void kicksOffAcrossManyPassesNeverLetTheWindowWrapOntoTheParkedEvent() {
        start(ALL);
        g.v.forgeDescriptor(0, g.alloc(1), 1, F_WRITE, 0);
        q.disableNotification();
        // A long polling phase: 70000 requests, more than the 16-bit index space, kicks off
        // throughout (each pass disables again, as BlkQueue.process does).
        for (int i = 0; i < 70_000; i++) {
            g.v.forgeAvail(0);
            q.disableNotification();
            assertThat(q.pop(c)).isTrue();
            q.push(0, 1);
            int event = g.v.availEvent();
            int next = (g.v.availIdx() + 1) & 0xffff;
            assertThat(SplitQueue.needEvent(event, next, g.v.availIdx()))
                    .as("a driver adding after request %d would kick", i).isFalse();
        }
        assertThat(q.enableNotification()).isFalse();
    }

    @Test
    void disableOnAStoppedQueueDoesNothing() {
        q.disableNotification();
        assertThat(q.notificationsDisabled()).isFalse();
        assertThat(q.enableNotification()).isFalse();
    }
}
