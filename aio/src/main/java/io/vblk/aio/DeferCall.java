package io.vblk.aio;

/**
 * Home thread: the thread that owns it (one per thread, {@link #current()}). No locking.
 *
 * <p>Defer-call sections, as QEMU's {@code util/defer-call.c}: between {@link #begin()} and the
 * outermost {@link #end()}, {@link #defer} queues a function instead of running it, keeps one entry
 * per (function, object) pair, and the outermost end runs them. Used to batch: one
 * {@code io_submit} for every request queued in a pass, one eventfd write per queue for every
 * completion in a pass.
 *
 * <p>Re-entry: a deferred function runs with the section closed, so a {@code defer} it makes runs
 * at once, and a {@code begin/end} it makes is a new outermost section whose end runs its own
 * entries. That is how seed 000's cycle closes: the deferred submit completes synchronously,
 * completion processing opens and ends a section, and that end runs the next deferred submit one
 * stack frame deeper. The depth guard belongs to the submitter (the AIO engine), not here.
 */
public final class DeferCall {
    /** A deferred function; keep it in a field so the same object is queued every time. */
    @FunctionalInterface
    public interface Fn<T> {
        void run(T obj);
    }

    private static final ThreadLocal<DeferCall> CURRENT = ThreadLocal.withInitial(DeferCall::new);

    private final Thread owner = Thread.currentThread();
    private int nesting;
    /** Queued pairs of the open section. */
    private Batch open = new Batch();
    /** Free list of batches no longer in use, so steady state allocates nothing (one per nesting depth). */
    private Batch spare;
    private long deferred;
    private long coalesced;
    private long ranAtOnce;

    private DeferCall() {
    }

    /** This thread's sections. */
    public static DeferCall current() {
        return CURRENT.get();
    }

    public void begin() {
        checkOwner();
        nesting++;
    }

    public void end() {
        checkOwner();
        if (nesting <= 0) {
            throw new IllegalStateException("defer-call end without begin");
        }
        if (--nesting > 0) {
            return;
        }
        // Detach the batch before running it: functions it runs may open new sections, whose
        // entries go to a fresh (reused) batch and run at that section's end.
        Batch run = open;
        if (run.size == 0) {
            return;
        }
        open = takeSpare();
        try {
            for (int i = 0; i < run.size; i++) {
                run.invoke(i);
            }
        } finally {
            run.clear();
            run.nextFree = spare;
            spare = run;
        }
    }

    /** Queues {@code fn(obj)} to run at the outermost end, once per pair; outside a section runs it now. */
    @SuppressWarnings("unchecked")
    public <T> void defer(Fn<T> fn, T obj) {
        checkOwner();
        if (nesting == 0) {
            ranAtOnce++;
            fn.run(obj);
            return;
        }
        if (open.add((Fn<Object>) fn, obj)) {
            deferred++;
        } else {
            coalesced++;
        }
    }

    public int nesting() {
        return nesting;
    }

    public boolean inSection() {
        return nesting > 0;
    }

    /** Distinct pairs queued in sections so far. */
    public long deferredCount() {
        return deferred;
    }

    /** Queue requests that found their pair already queued. */
    public long coalescedCount() {
        return coalesced;
    }

    /** Defers made outside any section, run at once. */
    public long ranAtOnceCount() {
        return ranAtOnce;
    }

    private Batch takeSpare() {
        Batch b = spare;
        if (b == null) {
            return new Batch();
        }
        spare = b.nextFree;
        b.nextFree = null;
        return b;
    }

    private void checkOwner() {
        if (Thread.currentThread() != owner) {
            throw new IllegalStateException("defer-call state of " + owner.getName()
                    + " used from " + Thread.currentThread().getName());
        }
    }

    /** Parallel arrays of pairs; a linear scan is cheapest for the handful a section queues. */
    private static final class Batch {
        Fn<Object>[] fns = newFns(8);
        Object[] objs = new Object[8];
        int size;
        Batch nextFree;

        @SuppressWarnings("unchecked")
        private static Fn<Object>[] newFns(int n) {
            return (Fn<Object>[]) new Fn[n];
        }

        boolean add(Fn<Object> fn, Object obj) {
            for (int i = 0; i < size; i++) {
                if (fns[i] == fn && objs[i] == obj) {
                    return false;
                }
            }
            if (size == fns.length) {
                Fn<Object>[] nf = newFns(size * 2);
                System.arraycopy(fns, 0, nf, 0, size);
                fns = nf;
                objs = java.util.Arrays.copyOf(objs, size * 2);
            }
            fns[size] = fn;
            objs[size] = obj;
            size++;
            return true;
        }

        void invoke(int i) {
            fns[i].run(objs[i]);
        }

        void clear() {
            java.util.Arrays.fill(fns, 0, size, null);
            java.util.Arrays.fill(objs, 0, size, null);
            size = 0;
        }
    }
}
