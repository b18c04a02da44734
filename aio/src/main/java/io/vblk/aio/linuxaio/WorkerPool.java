package io.vblk.aio.linuxaio;

import io.vblk.aio.AioContext;
import io.vblk.aio.Bh;
import io.vblk.aio.DeferCall;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.Sys;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * A bounded pool of worker threads that run blocking file system calls ({@code preadv},
 * {@code pwritev}, {@code fdatasync}, {@code fallocate}) for one {@link AioContext}, as QEMU's
 * {@code thread-pool.c}: the file driver's {@code aio=threads} engine, and {@link LinuxAio}'s
 * fallback for operations the kernel's AIO cannot do (fallocate; fdatasync on kernels without
 * IOCB_CMD_FDSYNC).
 *
 * <p>Home thread: the owning IoThread for {@link #submit}, {@link #of}, {@link #release} and
 * completions. Workers touch only the operation fields and {@code result} of the requests they
 * hold. Hand-over to the workers is a bounded array queue (no per-request node); hand-back is an
 * intrusive Treiber stack of finished requests plus one bottom half, neither of which allocates.
 */
public final class WorkerPool {
    private static final System.Logger LOG = System.getLogger(WorkerPool.class.getName());
    /** Worker threads per context (the machine class here has 2 cores). */
    public static final int DEFAULT_WORKERS = 4;
    /** Requests handed to workers at once; more wait on the home thread, in order. */
    public static final int DEFAULT_CAPACITY = 64;

    private static final Object KEY = new Object();
    private static final VarHandle DONE_HEAD;
    private static final AioRequest STOP = new AioRequest();

    static {
        try {
            DONE_HEAD = MethodHandles.lookup().findVarHandle(WorkerPool.class, "doneHead", AioRequest.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private static final class Holder {
        WorkerPool pool;
    }

    private final AioContext ctx;
    private final Holder holder;
    private final int capacity;
    private final Thread[] workers;
    private final ArrayBlockingQueue<AioRequest> todo;
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
        this.todo = new ArrayBlockingQueue<>(capacity + threads);
        this.doneBh = ctx.bh("worker-pool-done", this::handBack);
        this.workers = new Thread[threads];
        for (int i = 0; i < threads; i++) {
            Thread t = new Thread(this::workerLoop, "vblk-pool-" + ctx.name() + "-" + i);
            t.setDaemon(true);
            workers[i] = t;
            t.start();
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
            req.state = AioRequest.IN_FLIGHT;
            inWorkers++;
            // Cannot fail: the queue holds capacity + threads and at most capacity are handed over.
            todo.add(req);
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

    private void workerLoop() {
        try {
            while (true) {
                AioRequest r = todo.take();
                if (r == STOP) {
                    return;
                }
                r.result = execute(r);
                AioRequest head;
                do {
                    head = (AioRequest) DONE_HEAD.getVolatile(this);
                    r.doneNext = head;
                } while (!DONE_HEAD.compareAndSet(this, head, r));
                // The push above happens-before the bottom half runs: Bh.schedule() is a volatile
                // read-modify-write that the home thread's dispatch reads. Pairs with the
                // getAndSet in handBack().
                doneBh.schedule();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
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
            r.state = AioRequest.IN_FLIGHT;
            inWorkers++;
            todo.add(r);
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
        for (int i = 0; i < workers.length; i++) {
            todo.add(STOP);
        }
        for (Thread t : workers) {
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
