package io.vblk.virtio.queue.stress;

import io.vblk.guest.GuestRam;
import io.vblk.guest.GuestVring;
import io.vblk.virtio.queue.DescriptorChain;
import io.vblk.virtio.queue.SplitQueue;
import io.vblk.virtio.queue.VirtioFeatures;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Expect;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.II_Result;

import java.lang.foreign.Arena;

/**
 * Home thread: one jcstress actor per side (the device actor owns the queue, the driver actor the
 * guest ring); each state object is used by one trial only.
 *
 * <p>jcstress litmus tests of the two store-load (Dekker) handshakes of a split virtqueue, run
 * over a real ring in guest memory with the real {@link SplitQueue} on the device side and the
 * mock guest driver's {@link GuestVring} on the driver side:
 * <ul>
 * <li><b>No lost kick</b>: the device re-enables kicks (avail_event / used flags), fences, and
 *     re-reads avail idx ({@link SplitQueue#enableNotification}); the driver publishes avail idx,
 *     fences, and reads avail_event / flags ({@link GuestVring#kickNeeded}). At least one of them
 *     must see the other: "device saw no buffer and driver sent no kick" is forbidden.</li>
 * <li><b>No lost interrupt</b>: the device publishes used idx, fences, and reads used_event /
 *     flags ({@link SplitQueue#needsNotify}); the driver re-enables interrupts, fences, and
 *     re-reads used idx ({@link GuestVring#enableInterrupts}). "Driver sleeps on an empty ring and
 *     device sends no interrupt" is forbidden.</li>
 * </ul>
 * Each in two variants: with VIRTIO_F_EVENT_IDX and with the flags.
 */
public final class NotifyFenceStress {
    private static final long GPA = 0x10000;
    private static final int QUEUE_SIZE = 4;

    private NotifyFenceStress() {
    }

    /** A started queue and its driver on a small ring of their own. */
    static class Ring {
        final GuestRam ram = GuestRam.ofArena("stress", Arena.ofAuto(), GPA, 0x2000);
        final GuestVring guest = GuestVring.allocate(ram, QUEUE_SIZE);
        final SplitQueue vq = new SplitQueue("stress");
        final DescriptorChain chain = new DescriptorChain();
        final long buf = ram.allocate(64, 16);

        Ring(boolean eventIdx) {
            guest.setEventIdx(eventIdx);
            long features = eventIdx ? 1L << VirtioFeatures.RING_EVENT_IDX : 0;
            if (!vq.start(guest.layout(), ram.guestMemory(), features, QUEUE_SIZE)) {
                throw new IllegalStateException(vq.brokenReason());
            }
        }

        /** Adds one chain to the ring without publishing avail idx. */
        void stage(int token) {
            guest.beginChain();
            guest.addBuffer(buf, 16, true);
            guest.commitChain(token);
        }
    }

    /** Driver adds a buffer while the device, kicks off, goes to sleep. */
    static class KickState extends Ring {
        KickState(boolean eventIdx) {
            super(eventIdx);
            vq.disableNotification();
            stage(1);
        }

        void device(II_Result r) {
            r.r1 = vq.enableNotification() ? 1 : 0;
        }

        void driver(II_Result r) {
            guest.publish();
            r.r2 = guest.kickNeeded() ? 1 : 0;
        }
    }

    /** Device completes a request while the driver, interrupts off, goes to sleep. */
    static class InterruptState extends Ring {
        InterruptState(boolean eventIdx) {
            super(eventIdx);
            stage(1);
            stage(2);
            guest.publish();
            guest.kickNeeded();
            // One completion with its notification decision, so the next one is not "the first".
            vq.pop(chain);
            vq.push(chain.head(), 0);
            vq.needsNotify();
            guest.reap((token, len) -> { });
            guest.disableInterrupts();
            vq.pop(chain);
        }

        void device(II_Result r) {
            vq.push(chain.head(), 0);
            r.r1 = vq.needsNotify() ? 1 : 0;
        }

        void driver(II_Result r) {
            r.r2 = guest.enableInterrupts() ? 1 : 0;
        }
    }

    @JCStressTest
    @Outcome(id = "0, 0", expect = Expect.FORBIDDEN, desc = "lost kick: device sleeps, driver does not kick")
    @Outcome(expect = Expect.ACCEPTABLE, desc = "device sees the buffer, or the driver kicks")
    @State
    public static class KickEventIdx extends KickState {
        public KickEventIdx() {
            super(true);
        }

        @Actor
        public void device(II_Result r) {
            super.device(r);
        }

        @Actor
        public void driver(II_Result r) {
            super.driver(r);
        }
    }

    @JCStressTest
    @Outcome(id = "0, 0", expect = Expect.FORBIDDEN, desc = "lost kick: device sleeps, driver does not kick")
    @Outcome(expect = Expect.ACCEPTABLE, desc = "device sees the buffer, or the driver kicks")
    @State
    public static class KickFlags extends KickState {
        public KickFlags() {
            super(false);
        }

        @Actor
        public void device(II_Result r) {
            super.device(r);
        }

        @Actor
        public void driver(II_Result r) {
            super.driver(r);
        }
    }

    @JCStressTest
    @Outcome(id = "0, 1", expect = Expect.FORBIDDEN, desc = "lost interrupt: driver sleeps on a used entry, no notify")
    @Outcome(expect = Expect.ACCEPTABLE, desc = "device notifies, or the driver sees the entry")
    @State
    public static class InterruptEventIdx extends InterruptState {
        public InterruptEventIdx() {
            super(true);
        }

        @Actor
        public void device(II_Result r) {
            super.device(r);
        }

        @Actor
        public void driver(II_Result r) {
            super.driver(r);
        }
    }

    @JCStressTest
    @Outcome(id = "0, 1", expect = Expect.FORBIDDEN, desc = "lost interrupt: driver sleeps on a used entry, no notify")
    @Outcome(expect = Expect.ACCEPTABLE, desc = "device notifies, or the driver sees the entry")
    @State
    public static class InterruptFlags extends InterruptState {
        public InterruptFlags() {
            super(false);
        }

        @Actor
        public void device(II_Result r) {
            super.device(r);
        }

        @Actor
        public void driver(II_Result r) {
            super.driver(r);
        }
    }
}
