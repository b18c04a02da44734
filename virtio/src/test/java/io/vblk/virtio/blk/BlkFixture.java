package io.vblk.virtio.blk;

import io.vblk.aio.AioContext;
import io.vblk.drivers.BlockDriver;
import io.vblk.guest.GuestRam;
import io.vblk.virtio.device.IoThreadMapping;

import java.lang.foreign.Arena;
import java.util.List;
import java.util.function.Consumer;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Home thread: the test thread.
 *
 * <p>One device on one step-driven context (the test thread is both the control context and the
 * queue's IoThread), one queue of 64 entries driven by the mock guest ({@link GuestQueue} over
 * {@link io.vblk.guest.GuestBlkQueue}). Tests step the loop with {@link #settle()}.
 */
final class BlkFixture implements AutoCloseable {
    final AioContext ctx;
    final BlockDriver driver;
    final BlkDevice dev;
    final GuestRam ram;
    final GuestQueue guest;

    BlkFixture(BlockDriver driver, Consumer<BlkDeviceConfig> tweak, long features) {
        this.ctx = AioContext.forCurrentThread("blk-test");
        this.driver = driver;
        BlkDeviceConfig cfg = new BlkDeviceConfig().queueSize(64).serial("vblk-serial-0001")
                .ioThreads(IoThreadMapping.single(ctx));
        tweak.accept(cfg);
        this.dev = new BlkDevice("vda", driver, cfg, ctx);
        this.ram = GuestRam.ofArena("blk-test", Arena.ofShared(), GuestRam.DEFAULT_GPA_BASE, 4 << 20);
        long accepted = GuestQueue.ringFeatures(features == -1 ? dev.deviceFeatures() : features);
        this.guest = new GuestQueue(ram, 0, 64, 32, accepted);
        dev.setDriverFeatures(accepted);
        GuestQueue.giveMemory(dev, ram);
        guest.attach(dev);
        boolean[] started = {false};
        dev.startQueue(0, () -> started[0] = true);
        settle();
        assertThat(started[0]).as("queue started").isTrue();
    }

    BlkFixture(BlockDriver driver) {
        this(driver, c -> { }, -1);
    }

    /** Steps the loop until nothing more happens (bounded). */
    void settle() {
        for (int i = 0; i < 10_000; i++) {
            if (!ctx.poll(false)) {
                return;
            }
        }
        throw new AssertionError("loop did not settle");
    }

    /** Kicks, runs the loop and returns what completed. */
    List<GuestQueue.Done> kickAndReap() {
        guest.kick();
        settle();
        return guest.reap();
    }

    /**
     * Kicks and waits (bounded) until {@code n} requests completed, blocking in the loop between
     * steps: for drivers whose completions come from the kernel (Linux AIO, worker threads).
     */
    List<GuestQueue.Done> kickAndWait(int n) {
        guest.kick();
        return waitDone(n);
    }

    List<GuestQueue.Done> waitDone(int n) {
        List<GuestQueue.Done> done = new java.util.ArrayList<>(guest.reap());
        long deadline = System.nanoTime() + 10_000_000_000L;
        io.vblk.aio.Timer tick = ctx.timer("fixture.tick", () -> { });
        try {
            while (done.size() < n) {
                if (System.nanoTime() - deadline > 0) {
                    throw new AssertionError("only " + done.size() + " of " + n + " requests completed");
                }
                tick.armIn(20_000_000L); // bounds the blocking poll
                ctx.poll(true);
                done.addAll(guest.reap());
            }
        } finally {
            tick.cancel();
        }
        settle();
        done.addAll(guest.reap());
        return done;
    }

    /** Posts nothing more; kicks and expects exactly one completion. */
    GuestQueue.Done one() {
        List<GuestQueue.Done> d = kickAndReap();
        assertThat(d).hasSize(1);
        return d.get(0);
    }

    int stop() {
        int[] next = {-1};
        dev.stopQueue(0, n -> next[0] = n);
        settle();
        return next[0];
    }

    BlkQueueStats stats() {
        return dev.queueStats(0);
    }

    @Override
    public void close() {
        try {
            if (dev.queueStarted(0)) {
                stop();
            }
            boolean[] closed = {false};
            dev.close(() -> closed[0] = true);
            settle();
            assertThat(closed[0]).as("device closed").isTrue();
        } finally {
            ctx.close();
            guest.close();
            ram.close();
            driver.close();
        }
    }
}
