package io.vblk.aio;

import io.vblk.aio.sys.CpuAffinity;
import io.vblk.aio.sys.Errno;

import java.time.Duration;
import java.util.BitSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * Any thread for {@link #close()} and {@link #ctx()}; the loop runs on its own thread.
 *
 * <p>A named thread that runs one {@link AioContext}'s loop until closed, as QEMU's
 * {@code iothread} object. With a CPU set, the thread binds itself to it
 * ({@code sched_setaffinity}) before its loop runs, so the placement covers the whole loop.
 */
public final class IoThread implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(IoThread.class.getName());
    /** How long close() waits for the loop to finish its work and stop. */
    public static final Duration CLOSE_TIMEOUT = Duration.ofSeconds(10);

    private final Thread thread;
    private final AioContext ctx;
    private final Bh stopBh;
    private final BitSet cpus;
    /** Set by the thread before {@code started} counts down when it could not start. */
    private volatile RuntimeException startFailure;
    private final CountDownLatch started = new CountDownLatch(1);
    private final CompletableFuture<Void> terminated = new CompletableFuture<>();
    private boolean stopRequested;

    private IoThread(String name, NanoClock clock, AioOptions options, BitSet cpus) {
        this.cpus = cpus == null || cpus.isEmpty() ? null : (BitSet) cpus.clone();
        this.thread = new Thread(this::run, name);
        this.thread.setDaemon(true);
        this.ctx = new AioContext(name, thread, clock, options);
        this.stopBh = ctx.bh(name + ".stop", () -> stopRequested = true);
    }

    /** Starts a thread named {@code name} running a new context. */
    public static IoThread start(String name, AioOptions options) {
        return start(name, NanoClock.SYSTEM, options);
    }

    public static IoThread start(String name, NanoClock clock, AioOptions options) {
        return start(name, clock, options, null);
    }

    /**
     * Starts the thread bound to {@code cpus} (null or empty: wherever the scheduler puts it).
     *
     * @throws IllegalArgumentException when a CPU of {@code cpus} is not available to the process,
     *                                  or the kernel refuses the mask; the message names the CPUs
     */
    public static IoThread start(String name, NanoClock clock, AioOptions options, BitSet cpus) {
        if (cpus != null && !cpus.isEmpty()) {
            CpuAffinity.checkAvailable(cpus, "IoThread " + name + " cpu-affinity=" + CpuAffinity.format(cpus));
        }
        IoThread t = new IoThread(name, clock, options, cpus);
        t.thread.start();
        try {
            t.started.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted starting " + name, e);
        }
        if (t.startFailure != null) {
            t.terminated.join(); // the thread closed its context and ended
            throw t.startFailure;
        }
        return t;
    }

    /** The CPUs this thread was bound to, or null when unpinned. Any thread. */
    public BitSet cpuAffinity() {
        return cpus == null ? null : (BitSet) cpus.clone();
    }

    public AioContext ctx() {
        return ctx;
    }

    public String name() {
        return thread.getName();
    }

    public Thread thread() {
        return thread;
    }

    private void run() {
        ctx.bindHome();
        if (cpus != null) {
            int r = CpuAffinity.setCurrentThread(cpus);
            if (r < 0) {
                startFailure = new IllegalArgumentException("IoThread " + thread.getName() + ": cpu-affinity="
                        + CpuAffinity.format(cpus) + " refused by sched_setaffinity: " + Errno.name(r));
                ctx.close();
                terminated.complete(null);
                started.countDown();
                return;
            }
        }
        started.countDown();
        try {
            while (!stopRequested) {
                try {
                    ctx.poll(true);
                } catch (RuntimeException | InternalError e) {
                    // A failed callback is a bug in that component (InternalError: a fault on mapped
                    // memory one handler did not catch); the loop keeps serving the others.
                    LOG.log(System.Logger.Level.ERROR, "IoThread " + thread.getName() + ": callback failed", e);
                }
            }
            ctx.close();
            terminated.complete(null);
        } catch (Throwable t) {
            // Never silently: every handler of this loop stops with it.
            LOG.log(System.Logger.Level.ERROR, "IoThread " + thread.getName() + " died; its handlers stop", t);
            terminated.completeExceptionally(t);
        }
    }

    /**
     * Stops the loop after the work already handed to it and waits, bounded, for it to end.
     * Throws if the context refuses to close (a bottom half still scheduled) or the thread does
     * not stop in time. Refused on the IoThread itself.
     */
    @Override
    public void close() {
        if (Thread.currentThread() == thread) {
            throw new IllegalStateException("IoThread " + thread.getName() + " cannot close itself");
        }
        if (terminated.isDone() && !thread.isAlive()) {
            terminated.join();
            return;
        }
        stopBh.schedule();
        try {
            terminated.get(CLOSE_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
            thread.join(CLOSE_TIMEOUT.toMillis());
        } catch (java.util.concurrent.TimeoutException e) {
            throw new IllegalStateException("IoThread " + thread.getName() + " did not stop within " + CLOSE_TIMEOUT
                    + " (a handler is blocking its loop)");
        } catch (java.util.concurrent.ExecutionException e) {
            throw new IllegalStateException("IoThread " + thread.getName() + " failed to close: "
                    + e.getCause().getMessage(), e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted closing " + thread.getName(), e);
        }
    }

    @Override
    public String toString() {
        return "IoThread[" + thread.getName() + "]";
    }
}
