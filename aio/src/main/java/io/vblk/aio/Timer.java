package io.vblk.aio;

/**
 * Home thread: the owning context's. No locking.
 *
 * <p>A named one-shot timer on a context's clock, preallocated and re-armable without allocation.
 */
public final class Timer {
    private final AioContext ctx;
    private final String name;
    private final Runnable callback;
    long deadline;
    /** Position in the context's timer heap, or -1 when not armed. */
    int heapIndex = -1;

    Timer(AioContext ctx, String name, Runnable callback) {
        this.ctx = ctx;
        this.name = name;
        this.callback = callback;
    }

    public String name() {
        return name;
    }

    /** Fires at {@code deadlineNanos} on the context's clock; re-arming moves it. */
    public void armAt(long deadlineNanos) {
        ctx.assertLoopThread();
        ctx.timers().arm(this, deadlineNanos);
    }

    /** Fires {@code delayNanos} from now. */
    public void armIn(long delayNanos) {
        armAt(ctx.now() + delayNanos);
    }

    public void cancel() {
        ctx.assertLoopThread();
        ctx.timers().remove(this);
    }

    public boolean isArmed() {
        return heapIndex >= 0;
    }

    public long deadline() {
        return deadline;
    }

    void fire() {
        callback.run();
    }

    @Override
    public String toString() {
        return "Timer[" + name + "@" + ctx.name() + "]";
    }
}
