package io.vblk.aio;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * Any thread for schedule, cancel and isScheduled; the callback runs on the home thread.
 *
 * <p>A bottom half: a named callback, preallocated once, that any thread can schedule to run on its
 * context's home thread. Scheduling is idempotent (scheduling twice before it runs runs it once),
 * lock-free and allocation-free, and wakes the loop. As QEMU's {@code QEMUBH}.
 *
 * <p>{@link #schedule()}, {@link #cancel()} and {@link #isScheduled()}: any thread. The callback
 * runs on the home thread.
 */
public final class Bh {
    static final int QUEUED = 1;     // linked into the context's pending stack
    static final int SCHEDULED = 2;  // should run when dispatched
    static final int DELETED = 4;    // never runs again

    private static final VarHandle FLAGS;

    static {
        try {
            FLAGS = MethodHandles.lookup().findVarHandle(Bh.class, "flags", int.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private final BhQueue queue;
    private final String owner;
    private final String name;
    private final Runnable callback;
    @SuppressWarnings("unused") // accessed through FLAGS
    private volatile int flags;
    /** Link in the context's pending stack; written only while QUEUED is being set or by the dispatcher. */
    Bh next;

    Bh(BhQueue queue, String name, String owner, Runnable callback) {
        this.queue = queue;
        this.owner = owner;
        this.name = name;
        this.callback = callback;
    }

    public String name() {
        return name;
    }

    /**
     * Makes the callback run once on the home thread, soon. Any thread.
     *
     * <p>The flag update and the push are ordered before the loop's wake-up; the loop re-reads the
     * pending stack after publishing that it is about to block. Pairs with
     * {@link BhQueue#hasPending()} in the loop's {@code canBlock} re-check.
     */
    public void schedule() {
        int old = (int) FLAGS.getAndBitwiseOr(this, QUEUED | SCHEDULED);
        if ((old & DELETED) != 0) {
            throw new IllegalStateException("bottom half '" + name + "' was deleted");
        }
        if ((old & QUEUED) == 0) {
            queue.push(this);
        }
    }

    /** Unschedules it if it has not started; it may still run if it already started. Any thread. */
    public void cancel() {
        FLAGS.getAndBitwiseAnd(this, ~SCHEDULED);
    }

    /** Cancels it for good. Any thread. */
    public void delete() {
        FLAGS.getAndBitwiseOr(this, DELETED);
        cancel();
    }

    public boolean isScheduled() {
        return ((int) FLAGS.getVolatile(this) & SCHEDULED) != 0;
    }

    /**
     * Called by the dispatcher on the home thread after it has read {@link #next}: clears QUEUED
     * and SCHEDULED together so a schedule() that comes later re-queues it, and runs it if it was
     * scheduled.
     */
    boolean dispatch() {
        int old = (int) FLAGS.getAndBitwiseAnd(this, ~(QUEUED | SCHEDULED));
        if ((old & SCHEDULED) == 0 || (old & DELETED) != 0) {
            return false;
        }
        callback.run();
        return true;
    }

    @Override
    public String toString() {
        return "Bh[" + name + "@" + owner + "]";
    }
}
