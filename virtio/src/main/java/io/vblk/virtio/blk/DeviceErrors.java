package io.vblk.virtio.blk;

import io.vblk.aio.AioContext;
import io.vblk.aio.sys.Errno;

/**
 * Home thread: the device's control context. No locking; {@link #stopped} and the counters are
 * volatile for readers on any thread.
 *
 * <p>The device-wide side of the error policies: counts the actions taken, sends
 * {@code BLOCK_IO_ERROR} to the device's {@link BlockEvents}, stops every queue of the device when
 * one queue held a request (the device stops as a whole, as QEMU's VM stop stops every queue), and
 * resumes them all. Queues report from their IoThreads through {@link #report}, a hand-over to the
 * control context; that allocates, but only for a failed request.
 */
final class DeviceErrors {
    private static final System.Logger LOG = System.getLogger(DeviceErrors.class.getName());

    private final String device;
    private final String nodeName;
    private final AioContext control;
    private final BlockEvents events;
    private BlkQueue[] queues = new BlkQueue[0];
    private volatile boolean stopped;
    private volatile long ignored;
    private volatile long reported;
    private volatile long stops;

    DeviceErrors(String device, String nodeName, AioContext control, BlockEvents events) {
        this.device = device;
        this.nodeName = nodeName;
        this.control = control;
        this.events = events;
    }

    void queues(BlkQueue[] q) {
        this.queues = q;
    }

    /** Whether the device is stopped by an I/O error. Any thread. */
    boolean stopped() {
        return stopped;
    }

    /** Failed requests that got {@code a}. Any thread. */
    long count(BlockErrorAction a) {
        return switch (a) {
            case IGNORE -> ignored;
            case REPORT -> reported;
            case STOP -> stops;
        };
    }

    /** Called on {@code q}'s IoThread: hands the error over to the control context. */
    void report(BlkQueue q, boolean read, BlockErrorAction a, int errno) {
        control.runOn(() -> onError(q, read, a, errno));
    }

    private void onError(BlkQueue from, boolean read, BlockErrorAction a, int errno) {
        control.assertHome();
        switch (a) {
            case IGNORE -> ignored++;
            case REPORT -> reported++;
            case STOP -> {
                stops++;
                if (!stopped) {
                    stopped = true;
                    LOG.log(System.Logger.Level.WARNING, "device " + device + " stopped after an I/O error ("
                            + (read ? "read" : "write") + ", " + Errno.name(errno) + "): its requests are held until"
                            + " it is resumed");
                    for (BlkQueue q : queues) {
                        if (q != from) {
                            q.ctx.runOn(q.errors::stop);
                        }
                    }
                }
            }
        }
        events.blockIoError(new BlockIoError(device, nodeName, read ? "read" : "write", a, errno == Errno.ENOSPC,
                Errno.name(errno)));
    }

    /** Resumes a stopped device: every queue re-submits what it held, then pops again. */
    void resume() {
        control.assertHome();
        if (!stopped) {
            return;
        }
        stopped = false;
        LOG.log(System.Logger.Level.INFO, "device " + device + " resumed");
        for (BlkQueue q : queues) {
            q.ctx.runOn(q::resumeAfterError);
        }
    }
}
