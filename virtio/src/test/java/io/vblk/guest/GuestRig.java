package io.vblk.guest;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.nullblk.NullDriver;
import io.vblk.virtio.blk.BlkDeviceConfig;

import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

import static org.assertj.core.api.Assertions.fail;

/**
 * Test fixture: a real virtio-blk device in process (control loop, IoThreads, the given driver)
 * with the guest driver attached, plus step helpers for tests that play the guest's vCPU on the
 * test thread. Completions are recorded per queue.
 *
 * <p>Home thread: the test thread is the vCPU of every queue it drives through these helpers.
 */
final class GuestRig implements AutoCloseable {
    static final long NULL_BYTES = 64L << 20;

    record Done(BlkSlot slot, int status, int usedLen) {
    }

    final InProcessBlk dev;
    final GuestBlkDriver guest;
    private final List<ArrayDeque<Done>> done = new ArrayList<>();

    private GuestRig(InProcessBlk dev, GuestBlkDriver guest) {
        this.dev = dev;
        this.guest = guest;
        for (int i = 0; i < guest.queueCount(); i++) {
            ArrayDeque<Done> d = new ArrayDeque<>();
            done.add(d);
            guest.queue(i).onCompletion((s, st, len) -> d.add(new Done(s, st, len)));
        }
    }

    static GuestRig nullDevice(NullDriver.Completion c, BlkDeviceConfig cfg, int iothreads, GuestBlkDriver.Options o) {
        return of(new NullDriver(NULL_BYTES, c), cfg, iothreads, o);
    }

    static GuestRig of(BlockDriver driver, BlkDeviceConfig cfg, int iothreads, GuestBlkDriver.Options o) {
        InProcessBlk dev = InProcessBlk.start(driver, cfg, iothreads, AioOptions.DEFAULT);
        try {
            return new GuestRig(dev, GuestBlkDriver.attach(dev.transport(), o));
        } catch (RuntimeException e) {
            dev.close();
            throw e;
        }
    }

    GuestBlkQueue q(int i) {
        return guest.queue(i);
    }

    /** Posts one request with {@code post} on a fresh slot of queue {@code qi}, kicks, and waits for it. */
    Done roundTrip(int qi, Consumer<BlkSlot> post) {
        GuestBlkQueue q = q(qi);
        BlkSlot s = q.acquire();
        post.accept(s);
        q.kick();
        Done d = await(qi, 1).get(0);
        q.release(d.slot());
        return d;
    }

    /**
     * Waits (bounded) for {@code n} completions on queue {@code qi}, sleeping on the call eventfd
     * between passes as a guest does, and returns them in completion order.
     */
    List<Done> await(int qi, int n) {
        GuestBlkQueue q = q(qi);
        ArrayDeque<Done> d = done.get(qi);
        if (d.size() < n && q.awaitCompletions(n - d.size(), 10_000) < n - d.size()) {
            fail("queue " + qi + ": " + d.size() + " of " + n + " completions after 10 s; " + q.vring()
                    + "; device: " + guest.transport().needsResetReason());
        }
        List<Done> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            out.add(d.poll());
        }
        return out;
    }

    /**
     * Waits (bounded) for {@code n} completions by polling the used ring only: never touches
     * used_event or the interrupt flag, so the device's notification decisions stay the test's.
     */
    List<Done> pollFor(int qi, int n) {
        GuestBlkQueue q = q(qi);
        ArrayDeque<Done> d = done.get(qi);
        long end = System.nanoTime() + Duration.ofSeconds(10).toNanos();
        while (d.size() < n) {
            if (q.reap() == 0) {
                if (System.nanoTime() - end > 0) {
                    fail("queue " + qi + ": " + d.size() + " of " + n + " completions after 10 s; " + q.vring());
                }
                Thread.onSpinWait();
            }
        }
        List<Done> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            out.add(d.poll());
        }
        return out;
    }

    /**
     * Returns once queue {@code qi}'s IoThread has finished what it was doing (a no-op run
     * there): any notification of a pass that already pushed used entries has been written.
     */
    void settle(int qi) {
        AioContext ctx = dev.queueContext(qi);
        AioContext.await(ctx.callOn(() -> null), Duration.ofSeconds(10));
    }

    @Override
    public void close() {
        try {
            guest.close();
        } finally {
            dev.close();
        }
    }
}
