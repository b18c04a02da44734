package io.vblk.aio.linuxaio;

import io.vblk.aio.AioContext;
import io.vblk.aio.Bh;
import io.vblk.aio.DeferCall;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.Sys;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

/**
 * Home thread: the owning IoThread for {@link #submit}, {@link #of}, {@link #release} and
 * completions. Workers touch only the operation fields and {@code result} of the requests they
 * hold. Hand-over to the workers is a single-producer, multi-consumer array ring (the home thread
 * publishes {@code tail}, workers claim entries by CAS on {@code head}) with park/unpark for idle
 * workers; hand-back is an intrusive Treiber stack of finished requests plus one bottom half.
 * Neither direction allocates or takes a lock.
 *
 * <p>A bounded pool of worker threads that run blocking file system calls ({@code preadv},
 * {@code pwritev}, {@code fdatasync}, {@code fallocate}) for one {@link AioContext}, as QEMU's
 * {@code thread-pool.c}: the file driver's {@code aio=threads} engine, and {@link LinuxAio}'s
 * fallback for operations the kernel's AIO cannot do (fallocate; fdatasync on kernels without
 * IOCB_CMD_FDSYNC).
 */
public final class WorkerPool {
    private static final System.Logger LOG = System.getLogger(WorkerPool.class.getName());
    /** Worker threads per context (the machine class here has 2 cores). */
    public static final int DEFAULT_WORKERS = 4;
    /** Requests handed to workers at once; more wait on the home thread, in order. */
    public static final int DEFAULT_CAPACITY = 64;

    private static final Object KEY = new Object();
    private static final VarHandle DONE_HEAD;
    private static final VarHandle HEAD;
    private static final VarHandle TAIL;
    private static final VarHandle PARKED;

    static {
        try {
            MethodHandles.Lookup l = MethodHandles.lookup();
            DONE_HEAD = l.findVarHandle(WorkerPool.class, "doneHead", AioRequest.class);
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

    private static final class Holder {
        WorkerPool pool;
    }

    private final AioContext ctx;
    private final Holder holder;
    private final int capacity;
    private final Worker[] workers;
    /** Hand-over ring; at least {@code capacity} entries, so the producer never laps a claimed one. */
    private final AioRequest[] ring;
    private final int mask;
    /** Next entry a worker claims; CAS by workers. */
    @SuppressWarnings("unused") // through HEAD
    private volatile long head;
    /** Next entry the home thread fills; written by the home thread only. */
    @SuppressWarnings("unused") // through TAIL
    private volatile long tail;
    private volatile boolean stopping;
    private final Bh doneBh;
    /** Finished requests, pushed by workers, taken whole by {@link #handBack()}. */
    @SuppressWarnings("unused") // through DONE_HEAD
    private volatile AioRequest doneHead;
    private AioRequest waitHead;
    private AioRequest waitTail;
    private int inWorkers;
    private int waiting;
    private int refs;
    private boolean closed;
    private long executed;

    private WorkerPool(AioContext ctx, Holder holder, int threads, int capacity) {
        this.ctx = ctx;
        this.holder = holder;
        this.capacity = capacity;
        int size = Integer.highestOneBit(Math.max(2, capacity) - 1) << 1;
        this.ring = new AioRequest[size];
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

    /** This context's pool, started on first use; takes a reference that {@link #release()} drops. Home thread. */
    public static WorkerPool of(AioContext ctx) {
        ctx.assertHome();
        Holder h = ctx.attachment(KEY, c -> new Holder());
        if (h.pool == null) {
            h.pool = new WorkerPool(ctx, h, DEFAULT_WORKERS, DEFAULT_CAPACITY);
        }
        h.pool.refs++;
        return h.pool;
    }

    /** Hands {@code req} to a worker (or queues it while all slots are busy). Home thread. */
    public void submit(AioRequest req) {
        ctx.assertHome();
        req.checkSubmittable();
        if (closed) {
            throw new IllegalStateException("worker pool of " + ctx.name() + " is closed");
        }
        if (inWorkers < capacity) {
            handOver(req);
        } else {
            req.state = AioRequest.QUEUED;
            if (waitTail == null) {
                waitHead = req;
            } else {
                waitTail.next = req;
            }
            waitTail = req;
            waiting++;
        }
    }

    /** Requests handed over or waiting. */
    public int inFlight() {
        return inWorkers + waiting;
    }

    public long executed() {
        return executed;
    }

    /**
     * Publishes {@code req} to the workers and wakes one that is parked. Home thread.
     *
     * <p>The tail store and the parked-flag reads are volatile, as are a worker's parked-flag store
     * and its tail re-read before it parks: whichever runs second sees the other, so a request is
     * never left with every worker asleep. Pairs with {@link #take(Worker)}.
     */
    private void handOver(AioRequest req) {
        req.state = AioRequest.IN_FLIGHT;
        inWorkers++;
        long t = (long) TAIL.get(this); // only this thread writes it
        ring[(int) t & mask] = req;
        TAIL.setVolatile(this, t + 1);
        for (Worker w : workers) {
            if ((boolean) PARKED.getVolatile(w) && PARKED.compareAndSet(w, true, false)) {
                LockSupport.unpark(w.thread);
                return;
            }
        }
    }

    /** Claims the next request, parking while there is none; null when the pool stops. Worker thread. */
    private AioRequest take(Worker me) {
        while (true) {
            long h = (long) HEAD.getVolatile(this);
            // Pairs with the volatile tail store in handOver(): the entry is written before tail moves.
            if (h < (long) TAIL.getVolatile(this)) {
                if (HEAD.compareAndSet(this, h, h + 1)) {
                    int i = (int) h & mask;
                    AioRequest r = ring[i];
                    ring[i] = null;
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
        AioRequest r;
        while ((r = take(me)) != null) {
            r.result = execute(r);
            AioRequest top;
            do {
                top = (AioRequest) DONE_HEAD.getVolatile(this);
                r.doneNext = top;
            } while (!DONE_HEAD.compareAndSet(this, top, r));
            // The push above happens-before the bottom half runs: Bh.schedule() is a volatile
            // read-modify-write that the home thread's dispatch reads. Pairs with the getAndSet in
            // handBack().
            doneBh.schedule();
        }
    }

    /** The blocking call itself; runs on a worker. */
    static long execute(AioRequest r) {
        return switch (r.op) {
            case AioRequest.READV -> Sys.preadv(r.fd, r.addr, r.iovcnt, r.offset);
            case AioRequest.WRITEV -> Sys.pwritev(r.fd, r.addr, r.iovcnt, r.offset);
            case AioRequest.FDSYNC -> Sys.fdatasync(r.fd);
            case AioRequest.FALLOCATE -> Sys.fallocate(r.fd, r.mode, r.offset, r.length);
            default -> -Errno.EINVAL;
        };
    }

    /** Bottom half: completes every finished request in submission order of their finishing. */
    private void handBack() {
        AioRequest list = (AioRequest) DONE_HEAD.getAndSet(this, (AioRequest) null);
        AioRequest fifo = null;
        while (list != null) {
            AioRequest n = list.doneNext;
            list.doneNext = fifo;
            fifo = list;
            list = n;
        }
        DeferCall dc = ctx.deferCall();
        dc.begin(); // guest notifications of this pass go out once, at the end
        try {
            while (fifo != null) {
                AioRequest r = fifo;
                fifo = r.doneNext;
                r.doneNext = null;
                inWorkers--;
                executed++;
                refill();
                r.complete(r.result);
            }
        } finally {
            dc.end();
        }
    }

    private void refill() {
        while (waitHead != null && inWorkers < capacity) {
            AioRequest r = waitHead;
            waitHead = r.next;
            if (waitHead == null) {
                waitTail = null;
            }
            r.next = null;
            waiting--;
            handOver(r);
        }
    }

    /** Drops a reference; the last one stops the workers (nothing may be in flight). Home thread. */
    public void release() {
        ctx.assertHome();
        if (refs <= 0) {
            throw new IllegalStateException("worker pool of " + ctx.name() + " released more often than taken");
        }
        if (--refs > 0) {
            return;
        }
        if (inFlight() > 0) {
            refs++;
            throw new IllegalStateException("worker pool of " + ctx.name() + " released with "
                    + inFlight() + " requests in flight; drain first");
        }
        closed = true;
        holder.pool = null;
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
