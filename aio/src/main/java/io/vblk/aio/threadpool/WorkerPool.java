package io.vblk.aio.threadpool;

import io.vblk.aio.AioContext;
import io.vblk.aio.Bh;
import io.vblk.aio.engine.EngineBackend;
import io.vblk.aio.engine.IoRequest;
import io.vblk.aio.engine.SubmissionQueue;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.FileIo;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.LockSupport;

/**
 * Home thread: the owning IoThread for every {@link EngineBackend} method. Workers touch only the
 * operation fields and the backend result of the requests they hold. Hand-over to the workers is a
 * single-producer, multi-consumer array ring (the home thread publishes {@code tail}, workers claim
 * entries by CAS on {@code head}) with park/unpark for idle workers; hand-back is an intrusive
 * Treiber stack of finished requests plus one bottom half. Neither direction allocates or takes a
 * lock.
 *
 * <p>The thread-pool backend ({@code aio=threads}) of one {@link AioContext}, as QEMU's
 * {@code thread-pool.c}: a bounded pool of worker threads that run blocking file system calls
 * ({@code preadv}, {@code pwritev}, {@code fdatasync}, {@code fallocate}), behind the context's
 * {@link SubmissionQueue}. It is also the Linux AIO engine's fallback for operations the kernel's
 * AIO cannot do (fallocate; fdatasync on kernels without IOCB_CMD_FDSYNC). Requests beyond
 * {@link #DEFAULT_CAPACITY} wait in the queue, in order.
 */
public final class WorkerPool implements EngineBackend {
    private static final System.Logger LOG = System.getLogger(WorkerPool.class.getName());
    /** Worker threads per context (the machine class here has 2 cores). */
    public static final int DEFAULT_WORKERS = 4;
    /** Requests handed to workers at once; more wait in the queue, in order. */
    public static final int DEFAULT_CAPACITY = 64;

    private static final Object KEY = new Object();
    private static final VarHandle DONE_HEAD;
    private static final VarHandle HEAD;
    private static final VarHandle TAIL;
    private static final VarHandle PARKED;
    private static final VarHandle SLOT = MethodHandles.arrayElementVarHandle(IoRequest[].class);

    static {
        try {
            MethodHandles.Lookup l = MethodHandles.lookup();
            DONE_HEAD = l.findVarHandle(WorkerPool.class, "doneHead", IoRequest.class);
            HEAD = l.findVarHandle(WorkerPool.class, "head", long.class);
            TAIL = l.findVarHandle(WorkerPool.class, "tail", long.class);
            PARKED = l.findVarHandle(Worker.class, "parked", boolean.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    /** A worker thread and its parked flag. */
    private static final class Worker {
        Thread thread;
        @SuppressWarnings("unused") // through PARKED
        volatile boolean parked;
    }

    private final AioContext ctx;
    private final int capacity;
    private final Worker[] workers;
    /** Hand-over ring; at least {@code capacity} entries, so the producer never laps an unclaimed one (see take). */
    private final IoRequest[] ring;
    private final int mask;
    /** Next entry a worker claims; CAS by workers. */
    @SuppressWarnings("unused") // through HEAD
    private volatile long head;
    /** Next entry the home thread fills; written by the home thread only. */
    @SuppressWarnings("unused") // through TAIL
    private volatile long tail;
    private volatile boolean stopping;
    private final Bh doneBh;
    /** Finished requests, pushed by workers, taken whole by {@link #reap}. */
    @SuppressWarnings("unused") // through DONE_HEAD
    private volatile IoRequest doneHead;
    /** Finished requests taken from the stack, oldest first, not yet handed to the queue. */
    private IoRequest reapHead;
    private EngineBackend.Queue queue;
    /** A worker's call threw once already (logged once per pool). */
    private final AtomicBoolean failureLogged = new AtomicBoolean();
    private int inWorkers;
    private long executed;

    private WorkerPool(AioContext ctx, int threads, int capacity) {
        this.ctx = ctx;
        this.capacity = capacity;
        int size = Integer.highestOneBit(Math.max(2, capacity) - 1) << 1;
        this.ring = new IoRequest[size];
        this.mask = size - 1;
        this.doneBh = ctx.bh("worker-pool-done", this::handBack);
        this.workers = new Worker[threads];
        for (int i = 0; i < threads; i++) {
            Worker w = new Worker();
            w.thread = new Thread(() -> workerLoop(w), "vblk-pool-" + ctx.name() + "-" + i);
            w.thread.setDaemon(true);
            workers[i] = w;
        }
        for (Worker w : workers) {
            w.thread.start();
        }
    }

    /**
     * This context's thread-pool engine, started on first use; takes a reference that
     * {@link SubmissionQueue#release()} drops (the last one stops the workers). Home thread.
     */
    public static SubmissionQueue of(AioContext ctx) {
        return SubmissionQueue.shared(ctx, KEY, c -> new WorkerPool(c, DEFAULT_WORKERS, DEFAULT_CAPACITY));
    }

    @Override
    public String kind() {
        return "threads";
    }

    @Override
    public void attach(EngineBackend.Queue q) {
        this.queue = q;
    }

    @Override
    public int capacity() {
        return capacity;
    }

    /** Hands the first {@code n} queued requests to the workers; all fit (the queue checks capacity). */
    @Override
    public int submit(IoRequest first, int n) {
        IoRequest r = first;
        for (int i = 0; i < n; i++, r = r.nextQueued()) {
            handOver(r);
        }
        return n;
    }

    /** Requests handed to workers and not yet handed back. */
    public int inWorkers() {
        return inWorkers;
    }

    /** Requests the workers ran and the home thread took back. */
    public long executed() {
        return executed;
    }

    /** Worker threads still running (all of them until {@link #close}: a worker never dies of a request). */
    public int liveWorkers() {
        int n = 0;
        for (Worker w : workers) {
            n += w.thread.isAlive() ? 1 : 0;
        }
        return n;
    }

    /** The pool's state for a hang report: live workers, requests in them, ring positions. Home thread. */
    @Override
    public String toString() {
        return "WorkerPool[" + ctx.name() + " workers " + liveWorkers() + "/" + workers.length + " alive, "
                + inWorkers + " in workers, executed " + executed + ", ring head " + (long) HEAD.getVolatile(this)
                + " tail " + (long) TAIL.getVolatile(this) + "]";
    }

    /**
     * Publishes {@code req} to the workers and wakes one that is parked. Home thread.
     *
     * <p>The tail store and the parked-flag reads are volatile, as are a worker's parked-flag store
     * and its tail re-read before it parks: whichever runs second sees the other, so a request is
     * never left with every worker asleep. Pairs with {@link #take(Worker)}.
     */
    private void handOver(IoRequest req) {
        inWorkers++;
        long t = (long) TAIL.get(this); // only this thread writes it
        SLOT.setRelease(ring, (int) t & mask, req);
        TAIL.setVolatile(this, t + 1);
        for (Worker w : workers) {
            if ((boolean) PARKED.getVolatile(w) && PARKED.compareAndSet(w, true, false)) {
                LockSupport.unpark(w.thread);
                return;
            }
        }
    }

    /**
     * Claims the next request, parking while there is none; null when the pool stops. Worker thread.
     *
     * <p>The entry is read before the claim, not after: a worker that wins the CAS on {@code head}
     * may be descheduled before it reads its slot, while the other workers run and hand back the
     * requests behind it and the home thread, seeing room (only {@code inWorkers} is bounded, not
     * the distance from the oldest unread slot to {@code tail}), fills the ring a whole lap further
     * into that very slot. Reading after the claim then took the newer request and lost the claimed
     * one (a request that never completes: the pivot's drain waited for it forever), and the
     * worker that later claimed the newer one found the slot cleared. Read before the claim, the
     * value is the claimed one: while {@code head} is still {@code h}, request {@code h} and every
     * one after it are unclaimed, so in flight, so {@code tail - h <= capacity <= ring.length} and
     * slot {@code h} was not refilled. The slot is cleared only if it still holds that request.
     */
    private IoRequest take(Worker me) {
        while (true) {
            long h = (long) HEAD.getVolatile(this);
            // Pairs with the volatile tail store in handOver(): the entry is written before tail moves.
            if (h < (long) TAIL.getVolatile(this)) {
                int i = (int) h & mask;
                IoRequest r = (IoRequest) SLOT.getVolatile(ring, i);
                if (HEAD.compareAndSet(this, h, h + 1)) {
                    SLOT.compareAndSet(ring, i, r, (IoRequest) null); // unless already refilled
                    return r;
                }
                continue;
            }
            if (stopping) {
                return null;
            }
            PARKED.setVolatile(me, true);
            // Re-check after announcing: a hand-over that came before the announcement is seen here.
            if ((long) HEAD.getVolatile(this) < (long) TAIL.getVolatile(this) || stopping) {
                PARKED.compareAndSet(me, true, false);
                continue;
            }
            LockSupport.park(this);
            PARKED.compareAndSet(me, true, false); // spurious wake: clear it ourselves
        }
    }

    private void workerLoop(Worker me) {
        try {
            IoRequest r;
            while ((r = take(me)) != null) {
                r.backendResult(executeGuarded(r));
                IoRequest top;
                do {
                    top = (IoRequest) DONE_HEAD.getVolatile(this);
                    r.backendLink(top);
                } while (!DONE_HEAD.compareAndSet(this, top, r));
                // The push above happens-before the bottom half runs: Bh.schedule() is a volatile
                // read-modify-write that the home thread's dispatch reads. Pairs with the getAndSet
                // in reap().
                doneBh.schedule();
            }
        } catch (Throwable t) {
            // Never silent: a worker gone while the pool runs leaves fewer workers for its queue.
            LOG.log(System.Logger.Level.ERROR, "worker " + Thread.currentThread().getName() + " stopped", t);
            throw t;
        }
    }

    /**
     * {@link #execute} on a worker that survives whatever the call throws: the request completes
     * with -EIO instead of being lost with its worker (a lost request hangs every drain that waits
     * for it), and the first such failure of the pool is logged with its stack.
     */
    private long executeGuarded(IoRequest r) {
        try {
            return execute(r);
        } catch (Throwable t) {
            if (!failureLogged.getAndSet(true)) {
                LOG.log(System.Logger.Level.ERROR, "worker " + Thread.currentThread().getName()
                        + ": request " + r + " failed with an exception; completed with -EIO", t);
            }
            return -Errno.EIO;
        }
    }

    /** The blocking call itself; runs on a worker. */
    static long execute(IoRequest r) {
        return switch (r.op()) {
            case IoRequest.READV -> FileIo.preadv(r.fd(), r.iovAddress(), r.iovCount(), r.offset());
            case IoRequest.WRITEV -> FileIo.pwritev(r.fd(), r.iovAddress(), r.iovCount(), r.offset());
            case IoRequest.FDSYNC -> FileIo.fdatasync(r.fd());
            case IoRequest.FALLOCATE -> FileIo.fallocate(r.fd(), r.mode(), r.offset(), r.length());
            case IoRequest.SECURE_DISCARD -> FileIo.secureDiscard(r.fd(), r.offset(), r.length());
            default -> -Errno.EINVAL;
        };
    }

    /** Bottom half: the workers finished something; the queue reaps it. */
    private void handBack() {
        queue.completionEvent();
    }

    /**
     * Completes every finished request in the order the workers finished them. The cursor is
     * {@code reapHead}, so a nested pass continues where this one stopped.
     */
    @Override
    public void reap(EngineBackend.Queue q) {
        while (true) {
            IoRequest r = reapHead;
            if (r == null) {
                // Pairs with the CAS push in workerLoop(): the worker's result write comes before it.
                IoRequest list = (IoRequest) DONE_HEAD.getAndSet(this, (IoRequest) null);
                IoRequest fifo = null;
                while (list != null) {
                    IoRequest n = list.backendLink();
                    list.backendLink(fifo);
                    fifo = list;
                    list = n;
                }
                if (fifo == null) {
                    return;
                }
                r = fifo;
            }
            reapHead = r.backendLink();
            r.backendLink(null);
            inWorkers--;
            executed++;
            q.completed(r, r.backendResult());
        }
    }

    /** Stops the workers (nothing is in flight) and deletes the hand-back bottom half. */
    @Override
    public void close() {
        stopping = true;
        for (Worker w : workers) {
            LockSupport.unpark(w.thread);
        }
        for (Worker w : workers) {
            Thread t = w.thread;
            try {
                t.join(TimeUnit.SECONDS.toMillis(5));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
            if (t.isAlive()) {
                LOG.log(System.Logger.Level.WARNING, "worker " + t.getName() + " did not stop within 5 s");
            }
        }
        doneBh.delete();
    }
}
