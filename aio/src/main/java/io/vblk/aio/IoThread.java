package io.vblk.aio;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * Any thread for {@link #close()} and {@link #ctx()}; the loop runs on its own thread.
 *
 * <p>A named thread that runs one {@link AioContext}'s loop until closed, as QEMU's
 * {@code iothread} object.
 */
public final class IoThread implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(IoThread.class.getName());
    /** How long close() waits for the loop to finish its work and stop. */
    public static final Duration CLOSE_TIMEOUT = Duration.ofSeconds(10);

    private final Thread thread;
    private final AioContext ctx;
    private final Bh stopBh;
    private final CountDownLatch started = new CountDownLatch(1);
    private final CompletableFuture<Void> terminated = new CompletableFuture<>();
    private boolean stopRequested;

    private IoThread(String name, NanoClock clock, AioOptions options) {
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
        IoThread t = new IoThread(name, clock, options);
        t.thread.start();
        try {
            t.started.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted starting " + name, e);
        }
        return t;
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
