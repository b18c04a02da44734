package io.vblk.aio;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * Any thread for push (through Bh#schedule); runAll on the home thread only.
 *
 * <p>The scheduled bottom halves of one context: a lock-free (Treiber) stack that any thread pushes
 * onto and the home thread takes whole, reversed into scheduling order. Together with the flags in
 * {@link Bh} it makes scheduling idempotent and allocation-free.
 *
 * <p>{@link #push} from any thread; {@link #runAll()} on the home thread only.
 */
public final class BhQueue {
    private static final VarHandle HEAD;

    static {
        try {
            HEAD = MethodHandles.lookup().findVarHandle(BhQueue.class, "head", Bh.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private final Thread home;
    private final Runnable wakeHome;
    @SuppressWarnings("unused") // accessed through HEAD
    private volatile Bh head;

    /**
     * @param home     the thread that runs the bottom halves
     * @param wakeHome wakes the home thread's loop; called after a push from another thread
     */
    public BhQueue(Thread home, Runnable wakeHome) {
        this.home = home;
        this.wakeHome = wakeHome;
    }

    /** Creates a bottom half on this queue. Any thread. */
    public Bh newBh(String name, String owner, Runnable callback) {
        return new Bh(this, name, owner, callback);
    }

    /** Links a bottom half that just became QUEUED. Any thread. */
    void push(Bh bh) {
        Bh h;
        do {
            h = (Bh) HEAD.getVolatile(this);
            bh.next = h;
        } while (!HEAD.compareAndSet(this, h, bh));
        if (Thread.currentThread() != home) {
            // The push is visible before the loop's "may I block?" re-check reads hasPending();
            // pairs with AioContext.Loop.canBlock().
            wakeHome.run();
        }
    }

    /** True when some bottom half is queued. Any thread. */
    public boolean hasPending() {
        return HEAD.getVolatile(this) != null;
    }

    /** Runs every queued bottom half that is still scheduled, in scheduling order; returns how many ran. */
    public int runAll() {
        Bh list = (Bh) HEAD.getAndSet(this, (Bh) null);
        if (list == null) {
            return 0;
        }
        // Reverse the LIFO stack. Safe: every node is still QUEUED, so no other thread writes its link.
        Bh prev = null;
        while (list != null) {
            Bh n = list.next;
            list.next = prev;
            prev = list;
            list = n;
        }
        int ran = 0;
        for (Bh b = prev; b != null; ) {
            Bh n = b.next; // read before dispatch clears QUEUED and lets another thread relink it
            b.next = null;
            if (b.dispatch()) {
                ran++;
            }
            b = n;
        }
        return ran;
    }
}
