package io.vblk.guest;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.IoThread;
import io.vblk.drivers.BlockDriver;
import io.vblk.virtio.blk.BlkDevice;
import io.vblk.virtio.blk.BlkDeviceConfig;
import io.vblk.virtio.device.IoThreadMapping;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * Any thread that is no context's home thread. {@link #close()} stops the device, its
 * IoThreads and closes the driver (this object owns it).
 *
 * <p>A virtio-blk device assembled in this process for the emulated guest: a control IoThread (the
 * main loop the device is created on), {@code n} IoThreads its queues are mapped to round-robin,
 * the device over the given driver, and an {@link InProcessTransport} to it. Tests, benchmarks
 * and {@code vblk bench} share it.
 */
public final class InProcessBlk implements AutoCloseable {
    /** Bound on each control call and on tearing down. */
    public static final Duration CONTROL_TIMEOUT = Duration.ofSeconds(10);

    private final BlockDriver driver;
    private final IoThread control;
    private final List<IoThread> ioThreads;
    private final BlkDevice device;
    private final InProcessTransport transport;
    private boolean closed;

    private InProcessBlk(BlockDriver driver, IoThread control, List<IoThread> ioThreads, BlkDevice device) {
        this.driver = driver;
        this.control = control;
        this.ioThreads = ioThreads;
        this.device = device;
        this.transport = new InProcessTransport(device, control.ctx(), CONTROL_TIMEOUT);
    }

    /**
     * Starts {@code iothreads} IoThreads with {@code io} options, maps {@code cfg}'s queues to
     * them round-robin (overriding any mapping in {@code cfg}) and creates the device on a new
     * control IoThread. Takes ownership of {@code driver}, also when this fails.
     */
    public static InProcessBlk start(BlockDriver driver, BlkDeviceConfig cfg, int iothreads, AioOptions io) {
        if (iothreads < 1) {
            driver.close();
            throw new IllegalArgumentException("iothreads must be >= 1, got " + iothreads);
        }
        IoThread control = null;
        List<IoThread> threads = new ArrayList<>();
        try {
            control = IoThread.start("vblk-main", AioOptions.DEFAULT);
            List<AioContext> ctxs = new ArrayList<>();
            for (int i = 0; i < iothreads; i++) {
                IoThread t = IoThread.start("vblk-iothread-" + i, io);
                threads.add(t);
                ctxs.add(t.ctx());
            }
            cfg.ioThreads(IoThreadMapping.roundRobin(ctxs));
            AioContext c = control.ctx();
            BlkDevice dev = AioContext.await(c.callOn(() -> new BlkDevice("vda", driver, cfg, c)), CONTROL_TIMEOUT);
            return new InProcessBlk(driver, control, List.copyOf(threads), dev);
        } catch (RuntimeException e) {
            for (IoThread t : threads) {
                t.close();
            }
            if (control != null) {
                control.close();
            }
            driver.close();
            throw e;
        }
    }

    public InProcessTransport transport() {
        return transport;
    }

    public BlkDevice device() {
        return device;
    }

    public BlockDriver driver() {
        return driver;
    }

    public IoThread control() {
        return control;
    }

    public List<IoThread> ioThreads() {
        return ioThreads;
    }

    /** Every event loop of the device: the control loop first, then the IoThreads'. */
    public List<AioContext> loops() {
        List<AioContext> l = new ArrayList<>();
        l.add(control.ctx());
        for (IoThread t : ioThreads) {
            l.add(t.ctx());
        }
        return l;
    }

    /** The context queue {@code q} lives on. */
    public AioContext queueContext(int q) {
        return device.queueContext(q);
    }

    /**
     * Closes the device (its queues must be stopped: close the guest driver first), then the
     * IoThreads, then the driver. Bounded by {@link #CONTROL_TIMEOUT} per step.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        RuntimeException failure = null;
        try {
            CompletableFuture<Void> done = new CompletableFuture<>();
            control.ctx().runOn(() -> {
                try {
                    device.close(() -> done.complete(null));
                } catch (RuntimeException e) {
                    done.completeExceptionally(e);
                }
            });
            AioContext.await(done, CONTROL_TIMEOUT);
        } catch (RuntimeException e) {
            failure = e;
        }
        for (IoThread t : ioThreads) {
            try {
                t.close();
            } catch (RuntimeException e) {
                failure = failure == null ? e : failure;
            }
        }
        try {
            control.close();
        } catch (RuntimeException e) {
            failure = failure == null ? e : failure;
        }
        driver.close();
        if (failure != null) {
            throw failure;
        }
    }
}
