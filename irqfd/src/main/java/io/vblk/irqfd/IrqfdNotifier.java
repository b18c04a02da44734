package io.vblk.irqfd;

import io.vblk.aio.AioContext;
import io.vblk.aio.DeferCall;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.EventFds;

/**
 * Home thread: the owning IoThread of the queue ({@code ctx}). No locking. The counters are
 * plain fields; their getters may be read from any thread as a racy snapshot (metrics).
 *
 * <p>Notifies the guest through a queue's call eventfd (KVM's irqfd, or vhost-user's
 * SET_VRING_CALL fd). {@link #notifyGuest()} inside a defer-call section is deferred with
 * {@code ctx.deferCall().defer(SEND, this)}, so a pass that completes N requests writes the eventfd
 * at most once (QEMU's {@code virtio_irqfd_notify} with {@code defer_call}). Whether to write at
 * all is asked of the queue's {@link NotifyFilter} when the deferred send runs.
 *
 * <p>The eventfd is not owned here: whoever set it closes it, after {@link #setCallFd} replaced it.
 */
public final class IrqfdNotifier implements Notifier {
    /** The deferred send; one stable object so the section keeps one entry per notifier. */
    private static final DeferCall.Fn<IrqfdNotifier> SEND = IrqfdNotifier::send;

    private final AioContext ctx;
    private final String name;
    private final NotifyFilter filter;
    private int callFd;
    /** True from the first request of a section until its deferred send has run. */
    private boolean pending;

    private long requested;
    private long coalesced;
    private long suppressed;
    private long writes;
    private long skippedNoFd;
    private long writeErrors;
    private int lastError;

    /**
     * @param callFd the eventfd to write, or -1 for none (a peer that polls the used ring)
     */
    public IrqfdNotifier(AioContext ctx, String name, int callFd, NotifyFilter filter) {
        this.ctx = ctx;
        this.name = name;
        this.callFd = callFd;
        this.filter = filter;
    }

    public String name() {
        return name;
    }

    public AioContext context() {
        return ctx;
    }

    @Override
    public void notifyGuest() {
        ctx.assertHome();
        requested++;
        if (pending) {
            // Already queued in this section: the one send at its end covers this completion too.
            coalesced++;
            return;
        }
        pending = true; // before defer: outside a section it runs send() at once, which clears it
        ctx.deferCall().defer(SEND, this);
    }

    /** Replaces the call eventfd (-1: none). The caller closes the old one. Home thread. */
    public void setCallFd(int fd) {
        ctx.assertHome();
        this.callFd = fd;
    }

    public int callFd() {
        return callFd;
    }

    private void send() {
        pending = false;
        if (!filter.shouldNotify()) {
            suppressed++;
            return;
        }
        int fd = callFd;
        if (fd < 0) {
            skippedNoFd++;
            return;
        }
        // eventfd write: the kernel's wake of the reader (KVM injecting the interrupt, or the
        // frontend's poll) pairs with this write; the used ring was published before it (release
        // store of used idx in the queue's push).
        int r = EventFds.eventfdWrite(fd, 1);
        if (r == 0 || r == -Errno.EAGAIN) {
            // -EAGAIN: the counter is at its maximum, so the reader is already signalled.
            writes++;
        } else {
            writeErrors++;
            lastError = -r;
        }
    }

    /** Notifications asked for by completions. */
    public long requested() {
        return requested;
    }

    /** Requests folded into a send already queued in the same section. */
    public long coalesced() {
        return coalesced;
    }

    /** Sends the guest's flags (EVENT_IDX / NO_INTERRUPT) said it does not want. */
    public long suppressed() {
        return suppressed;
    }

    /** Eventfd writes done. */
    public long writes() {
        return writes;
    }

    /** Sends dropped because the queue has no call eventfd (a polling peer). */
    public long skippedNoFd() {
        return skippedNoFd;
    }

    /** Eventfd writes that failed (e.g. EBADF after the fd was closed under us). */
    public long writeErrors() {
        return writeErrors;
    }

    /** Errno of the last failed write, 0 if none. */
    public int lastError() {
        return lastError;
    }

    @Override
    public String toString() {
        return "IrqfdNotifier[" + name + " fd=" + callFd + " requested=" + requested + " coalesced=" + coalesced
                + " suppressed=" + suppressed + " writes=" + writes + "]";
    }
}
