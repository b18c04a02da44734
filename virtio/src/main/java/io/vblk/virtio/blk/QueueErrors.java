package io.vblk.virtio.blk;

import io.vblk.aio.sys.Errno;

/**
 * Home thread: the queue's IoThread. No locking.
 *
 * <p>The error policy of one queue ({@code werror} / {@code rerror}, see {@link ErrorPolicy}): turns
 * a request the driver failed into a status (ignore: OK, report: IOERR) or holds it (stop), and
 * keeps the held requests until the device is resumed, as QEMU's virtio-blk keeps them on its
 * {@code rq} list until {@code cont}.
 *
 * <p>While stopped the queue pops nothing ({@link BlkQueue#process} returns before popping), so
 * the requests that follow stay in the avail ring; requests already in flight complete as they
 * come (a success completes, a failure is held too). Resuming re-submits the held requests in the
 * order they were held, before anything new is popped. Nothing held is ever completed without
 * being re-executed, except when the queue itself is stopped (the vhost-user front end takes the
 * ring away): then the held requests are re-submitted once more and a second failure is reported,
 * so that the stop can finish and no request is left without an answer.
 */
final class QueueErrors {
    private final BlkQueue queue;
    private final DeviceErrors device;
    private final ErrorPolicy werror;
    private final ErrorPolicy rerror;
    private BlkRequest heldHead;
    private BlkRequest heldTail;
    private boolean stopped;
    /** The queue is being stopped: STOP acts as REPORT (see the class comment). */
    private boolean draining;

    QueueErrors(BlkQueue queue, DeviceErrors device, BlkDeviceConfig cfg) {
        this.queue = queue;
        this.device = device;
        this.werror = cfg.werror;
        this.rerror = cfg.rerror;
    }

    /**
     * The driver failed {@code r} with {@code result} (-errno, or a short byte count: EIO). Returns the
     * status to complete it with, or -1 when it is held (the caller leaves it in flight).
     */
    int onFailure(BlkRequest r, long result) {
        int errno = result < 0 ? (int) -result : Errno.EIO;
        boolean read = r.type == BlkRequestType.IN;
        BlockErrorAction a = (read ? rerror : werror).action(errno);
        if (a == BlockErrorAction.STOP && draining) {
            a = BlockErrorAction.REPORT;
        }
        device.report(queue, read, a, errno);
        switch (a) {
            case IGNORE -> {
                return BlkStatus.OK;
            }
            case REPORT -> {
                return BlkStatus.IOERR;
            }
            default -> {
                stopped = true;
                hold(r);
                return -1;
            }
        }
    }

    private void hold(BlkRequest r) {
        r.heldNext = null;
        if (heldTail == null) {
            heldHead = r;
        } else {
            heldTail.heldNext = r;
        }
        heldTail = r;
        queue.stats.held++;
    }

    /** Whether the queue takes no request (the device is stopped by an I/O error). */
    boolean stopped() {
        return stopped;
    }

    /** The device stopped (another queue's error, or this queue's start on a stopped device). */
    void stop() {
        queue.ctx.assertHome();
        stopped = true;
    }

    /** The device resumed: the next pass re-submits the held requests, then pops again. */
    void resume() {
        queue.ctx.assertHome();
        stopped = false;
        draining = false;
    }

    /** The queue starts (again): stopped as the device is. */
    void onStart(boolean deviceStopped) {
        draining = false;
        stopped = deviceStopped;
    }

    /**
     * The queue is being stopped while requests are held: re-submit them now, reporting a second
     * failure, so the stop finishes (see the class comment).
     */
    void onQueueStop() {
        draining = true;
        stopped = false;
        if (queue.stats.held > 0) {
            System.getLogger(QueueErrors.class.getName()).log(System.Logger.Level.WARNING, "queue " + queue
                    + " stops with " + queue.stats.held + " request(s) held after an I/O error: re-submitted once, a failure"
                    + " now is reported to the guest");
            io.vblk.aio.DeferCall dc = queue.ctx.deferCall();
            dc.begin(); // one batched submission, as a pass does
            try {
                resubmitHeld();
            } finally {
                dc.end();
            }
        }
    }

    /**
     * Re-submits the held requests in the order they were held (called by the queue's pass, before
     * it pops). A request that fails again while this runs is held again, and the rest stay behind
     * it in their order.
     */
    void resubmitHeld() {
        if (heldHead == null) {
            return;
        }
        BlkRequest list = heldHead;
        heldHead = null;
        heldTail = null;
        queue.stats.held = 0;
        while (list != null) {
            BlkRequest r = list;
            list = r.heldNext;
            r.heldNext = null;
            if (stopped) {
                hold(r);
            } else {
                queue.submit(r);
            }
        }
    }
}
