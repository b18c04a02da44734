package io.vblk.aio;

import io.netty.channel.IoEvent;
import io.netty.channel.IoRegistration;
import io.netty.channel.epoll.EpollIoEvent;
import io.netty.channel.epoll.EpollIoHandle;
import io.netty.channel.epoll.EpollIoOps;
import io.netty.channel.unix.FileDescriptor;

/**
 * Home thread: the owning context's. No locking.
 *
 * <p>A read-ready callback on a file descriptor (an eventfd, a socket), registered level-triggered
 * with the context's epoll {@code IoHandler}. The callback must drain what made the fd ready
 * (read the eventfd, read the socket until EAGAIN) or remove itself on end-of-file, else the loop
 * calls it again at once.
 *
 * <p>A handler driven by the guest (a virtqueue kick) is paused by its owner for a drained section
 * of the block node behind it, as QEMU 8 detaches a virtqueue's host notifier in the device's
 * {@code drained_begin}: {@link #drainedBegin} takes it out of the epoll input set;
 * {@link #drainedEnd} puts it back and runs it once, so a kick that arrived meanwhile is not lost
 * (seed 003). The context counts both for the drained-section meters.
 */
public final class FdHandler implements EpollIoHandle {
    /** What runs when the fd is readable (or reports an error or hang-up). */
    @FunctionalInterface
    public interface Callback {
        void ready(int fd);
    }

    private final AioContext ctx;
    private final String name;
    private final int fd;
    private final Callback callback;
    private final FileDescriptor nettyFd;
    private IoRegistration registration;
    private boolean enabled;
    private boolean paused;
    private boolean removed;
    /** A main-loop source: dispatched by the loop's own iterations, hidden from a nested wait. */
    boolean mainLoopOnly;
    /** Taken out of the epoll input set by the nested wait in progress ({@link AioContext#waitWhile}). */
    boolean hiddenByNestedWait;
    long dispatchCount;
    /** Called when the fd is writable, while {@link #wantWritable} is on; null until set. */
    private Callback writable;
    private boolean wantWrite;
    private int ops = -1;
    /** The owner switched reading off ({@link #setReadInterest}); wins over every re-enable. */
    private boolean readOff;

    FdHandler(AioContext ctx, String name, int fd, Callback callback) {
        this.ctx = ctx;
        this.name = name;
        this.fd = fd;
        this.callback = callback;
        // Netty's FileDescriptor only wraps the number here; closing stays the owner's job.
        this.nettyFd = new FileDescriptor(fd);
    }

    public String name() {
        return name;
    }

    public int fdNumber() {
        return fd;
    }

    public boolean enabled() {
        return enabled;
    }

    /** Times the callback ran. */
    public long dispatchCount() {
        return dispatchCount;
    }

    void attach(IoRegistration reg) {
        this.registration = reg;
    }

    void enable(boolean on) {
        on = on && !readOff;
        if (removed || on == enabled) {
            return;
        }
        enabled = on;
        submitOps();
    }

    /**
     * Switches the read callback off (a protocol peer whose requests must wait: every request slot
     * is busy, or output is pending) or back on. Independent of a drained section's pause and of a
     * nested wait, which both still hold while it is on again. Home thread.
     */
    public void setReadInterest(boolean on) {
        ctx.assertLoopThread();
        readOff = !on;
        enable(on && !paused && !hiddenByNestedWait);
    }

    /**
     * Asks for (or stops asking for) {@code onWritable} when the fd can be written: a socket owner
     * whose send returned EAGAIN turns it on and off again once its output is out. Level-triggered,
     * independent of the read side's pause ({@link #drainedBegin}). Home thread.
     */
    public void wantWritable(boolean on, Callback onWritable) {
        ctx.assertLoopThread();
        if (onWritable != null) {
            writable = onWritable;
        }
        if (removed || on == wantWrite) {
            return;
        }
        wantWrite = on;
        submitOps();
    }

    private void submitOps() {
        // EPOLLIN / EPOLLOUT alone are level-triggered. With neither, the fd stays in the epoll set
        // with no events (EPOLL_CTL_MOD to EPOLLET only): Netty's registration cannot be re-added
        // after a DEL.
        int want = (enabled ? 1 : 0) | (wantWrite ? 2 : 0);
        if (want == ops) {
            return;
        }
        ops = want;
        registration.submit(switch (want) {
            case 1 -> EpollIoOps.EPOLLIN;
            case 2 -> EpollIoOps.EPOLLOUT;
            case 3 -> EpollIoOps.EPOLLIN.with(EpollIoOps.EPOLLOUT);
            default -> EpollIoOps.EPOLLET;
        });
    }

    /** Unregisters; the fd itself stays open (its owner closes it). Home thread. */
    public void remove() {
        ctx.assertLoopThread();
        if (removed) {
            return;
        }
        removed = true;
        enabled = false;
        // EPOLL_CTL_DEL; remove before closing the fd, since Netty keys registrations by fd number.
        registration.cancel();
        ctx.forget(this);
    }

    public boolean removed() {
        return removed;
    }

    /**
     * Pauses the handler for a drained section: no dispatch, even if the fd becomes readable, until
     * {@link #drainedEnd}. Not nested (the owner counts its sections). Home thread.
     */
    public void drainedBegin() {
        ctx.assertLoopThread();
        if (paused) {
            throw new IllegalStateException(this + " is already paused");
        }
        paused = true;
        ctx.drainedSections++;
        enable(false);
    }

    /**
     * Ends the pause: back in the epoll set, and the callback runs once now, as if the fd had
     * become readable — the owner's re-check, so a signal that came during the section is not lost
     * (the callback must accept an fd with nothing to read: EAGAIN). Home thread.
     */
    public void drainedEnd() {
        ctx.assertLoopThread();
        if (!paused) {
            throw new IllegalStateException(this + " is not paused");
        }
        paused = false;
        if (removed) {
            return;
        }
        if (!hiddenByNestedWait) {
            enable(true);
        }
        ctx.drainRechecks++;
        dispatchCount++;
        callback.ready(fd);
    }

    /** True for a main-loop source, which a nested {@link AioContext#waitWhile} does not dispatch. */
    public boolean mainLoopOnly() {
        return mainLoopOnly;
    }

    /** True between {@link #drainedBegin} and {@link #drainedEnd}. Home thread. */
    public boolean paused() {
        return paused;
    }

    @Override
    public FileDescriptor fd() {
        return nettyFd;
    }

    @Override
    public void handle(IoRegistration registration, IoEvent ioEvent) {
        if (removed) {
            return;
        }
        boolean out = wantWrite && ioEvent instanceof EpollIoEvent e && e.ops().contains(EpollIoOps.EPOLLOUT);
        if (!enabled && !out) {
            return;
        }
        ctx.noteProgress();
        dispatchCount++;
        try {
            if (out) {
                writable.ready(fd);
            }
            if (enabled && !removed) {
                callback.ready(fd);
            }
        } catch (RuntimeException e) {
            // Netty's dispatcher must not unwind; the context rethrows it from poll().
            ctx.callbackFailed(e, this);
        } catch (InternalError e) {
            // A fault on mapped memory the handler did not catch: reported like any failure.
            ctx.callbackFailed(new IllegalStateException(name + ": " + e.getMessage(), e), this);
        }
    }

    @Override
    public void close() {
        // Netty calls this when the registration is cancelled on shutdown; the fd is not ours.
    }

    @Override
    public String toString() {
        return "FdHandler[" + name + " fd=" + fd + (paused ? " paused" : "") + "@" + ctx.name() + "]";
    }
}
