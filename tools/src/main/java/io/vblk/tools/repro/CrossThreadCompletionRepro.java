package io.vblk.tools.repro;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.Bh;
import io.vblk.aio.Guard;
import io.vblk.aio.IoThread;
import io.vblk.aio.engine.AioMode;
import io.vblk.aio.engine.IoRequest;
import io.vblk.aio.engine.SubmissionQueue;
import io.vblk.aio.linuxaio.LinuxAio;
import io.vblk.aio.sys.FileIo;
import io.vblk.aio.uring.UringBackend;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Home thread: the caller's (no context's home thread); owns its IoThread, its Linux AIO engine,
 * its temp file and its buffers.
 *
 * <p>Seed 002: completions of one context processed from two threads at once, on the product's own
 * completion path. A real {@link LinuxAio} engine (or, with {@code --aio io_uring}, the real
 * {@link UringBackend}, whose CQ is reaped in user space the same way) on an IoThread reads a real temp file (page
 * cache) with {@link #DEPTH} reads in flight; the IoThread submits, and reaps the kernel's
 * completion ring through the engine's eventfd handler and its submit path
 * ({@link SubmissionQueue#completionEvent()} → {@link LinuxAio#reap} → {@code completed}).
 * Meanwhile the caller's thread wants the requests finished, as QEMU's main thread did in
 * {@code bdrv_drain} polling the IoThread's context:
 * <ul>
 *   <li>guard off ({@link Guard#HOME_THREAD} off on this context, so {@code assertHome} checks
 *       nothing): it calls the engine's any-thread entry {@link SubmissionQueue#requestCompletions()}
 *       in a loop, which then runs {@code completionEvent()} on this thread while the home thread
 *       reaps too. Both walk the kernel ring's head and the engine's
 *       plain counters; the repro's completion callback sees requests completed twice, completions
 *       on the wrong thread, and the engine's in-flight count going negative;</li>
 *   <li>guard on: the same call, {@link SubmissionQueue#requestCompletions()}, never touches the
 *       engine from this thread: it counts the attempt ({@link AioContext#countForeignCompletion()},
 *       the meter {@code vblk.guard.foreign.completions}) and schedules the engine's completion
 *       bottom half on the home context; the thread then waits to be kicked by a completion. Both
 *       threads stay active the whole run, and every request completes exactly once on its home
 *       thread.</li>
 * </ul>
 *
 * <p>The detection is the repro's completion callback (a per-request in-flight flag flipped with a
 * compare-and-set), never production code. With the guard off the engine's state may be broken
 * beyond repair; its buffers and the temp file's memory belong to the repro, which reaps until the
 * kernel has nothing left and releases the engine only when its counts are consistent — otherwise
 * it abandons the engine (the kernel context is destroyed at process exit) and says so
 * ({@code teardown=abandoned}), so no kernel write ever lands in freed memory.
 */
public final class CrossThreadCompletionRepro implements Repro {
    /** Reads in flight. */
    static final int DEPTH = 64;
    private static final int BLOCK = 4096;
    private static final int FILE_BLOCKS = 256;
    private static final int RING = 256;

    private final AioMode aio;

    /** On Linux AIO (aio=native). */
    public CrossThreadCompletionRepro() {
        this(AioMode.NATIVE);
    }

    /** On {@code aio}: {@link AioMode#NATIVE} (reaps the AIO ring) or {@link AioMode#IO_URING} (reaps the CQ). */
    public CrossThreadCompletionRepro(AioMode aio) {
        if (aio != AioMode.NATIVE && aio != AioMode.IO_URING) {
            throw new IllegalArgumentException("--aio accepts native or io_uring, got '" + aio + "'");
        }
        this.aio = aio;
    }

    private String engineName() {
        return aio == AioMode.IO_URING ? "io_uring" : "linux-aio";
    }

    @Override
    public String hazard() {
        return "cross-thread-completion";
    }

    @Override
    public String description() {
        return "seed 002: a second thread runs an IoThread's Linux AIO completions; requests complete twice";
    }

    @Override
    public ReproResult run(boolean guardOn, ReproOptions options) throws Exception {
        if (aio == AioMode.IO_URING) {
            String why = UringBackend.unavailableReason();
            if (why != null) {
                return inconclusive(guardOn, 0, "no io_uring on this kernel: " + why).with("engine", engineName());
            }
        }
        Path file = Files.createTempFile("vblk-repro-002-", ".img");
        try {
            Files.write(file, new byte[BLOCK * FILE_BLOCKS]);
            int fd = FileIo.open(file.toString(), FileIo.O_RDONLY | FileIo.O_CLOEXEC, 0);
            if (fd < 0) {
                return inconclusive(guardOn, 0, "cannot open the temp file: errno " + -fd);
            }
            Arena arena = Arena.ofShared();
            IoThread io = IoThread.start("repro-iothread", AioOptions.DEFAULT);
            AioContext ctx = io.ctx();
            ctx.setGuard(Guard.HOME_THREAD, guardOn);
            Workload w = new Workload(ctx, fd, arena, options.seed(), aio);
            boolean released = false;
            try {
                AioContext.await(ctx.callOn(() -> {
                    w.open();
                    return null;
                }), controlBound(options));
                ReproResult r = drive(w, guardOn, options);
                released = w.tearDown(options);
                return r.with("teardown", released ? "released" : "abandoned");
            } finally {
                try {
                    io.close();
                } catch (IllegalStateException e) {
                    if (released) {
                        throw e;
                    }
                    // Abandoned: the broken engine may keep a bottom half scheduled; the loop is gone anyway.
                }
                if (released) {
                    FileIo.close(fd);
                    arena.close();
                }
                // Abandoned: the kernel's AIO context or io_uring was never destroyed, so the kernel may
                // still name these buffers and this fd; they stay allocated until the process exits.
            }
        } finally {
            Files.deleteIfExists(file);
        }
    }

    /**
     * The bound of a control step handed to the IoThread (open, first refill, teardown): not a
     * hazard's symptom, so generous on a loaded machine, unlike {@code hangAfter}, which detects one.
     */
    static Duration controlBound(ReproOptions options) {
        Duration ten = options.hangAfter().multipliedBy(10);
        return ten.compareTo(Duration.ofSeconds(10)) > 0 ? ten : Duration.ofSeconds(10);
    }

    /** The caller's thread: the second thread of seed 002. */
    private ReproResult drive(Workload w, boolean guardOn, ReproOptions options) throws Exception {
        long deadline = System.nanoTime() + options.timeLimit().toNanos();
        long target = options.iterations();
        long rounds = 0;
        String failure = null;
        AioContext.await(w.ctx.callOn(() -> {
            w.refill();
            return null;
        }), controlBound(options));
        long lastDone = -1;
        long lastProgress = System.nanoTime();
        while (w.completions.get() < target && System.nanoTime() - deadline < 0 && !w.collisionSeen()) {
            rounds++;
            long now = System.nanoTime();
            long doneNow = w.completions.get();
            if (doneNow != lastDone) {
                lastDone = doneNow;
                lastProgress = now;
            } else if (now - lastProgress > options.hangAfter().toNanos()) {
                // The broken engine stopped completing anything: what was seen by now is the verdict.
                failure = "no request completed for " + options.hangAfter();
                break;
            }
            // The product's any-thread entry, SubmissionQueue.requestCompletions: with the guard
            // off it reaps from this thread, as bdrv_drain's aio_poll did; with it on it counts
            // the attempt and schedules the engine's completion bottom half on the home context.
            w.kick.drainPermits();
            w.waiting = guardOn;
            try {
                w.queue.requestCompletions();
            } catch (RuntimeException e) {
                w.engineErrors.incrementAndGet();
                w.firstEngineError = w.firstEngineError == null ? e.getMessage() : w.firstEngineError;
            }
            // Guard on: wait to be kicked by a completion on the home thread (QEMU's aio_wait_kick).
            // Pairs with kick.release() in aioCompleted: what the home thread reaped is published by it.
            if (guardOn && !w.kick.tryAcquire(options.hangAfter().toNanos(), TimeUnit.NANOSECONDS)) {
                failure = "no completion kicked the waiting thread within " + options.hangAfter();
                break;
            }
        }
        w.running = false;
        w.waiting = false;
        long done = w.completions.get();
        ReproResult r;
        if (w.hazardSeen()) {
            r = ReproResult.of(hazard(), guardOn, true, done, w.describe());
        } else if (failure != null) {
            r = inconclusive(guardOn, done, failure);
        } else if (w.ioErrors.get() > 0) {
            r = inconclusive(guardOn, done, w.ioErrors.get() + " reads failed or were short");
        } else if (!guardOn && done < target) {
            r = ReproResult.of(hazard(), false, false, done, "no collision seen within " + options.timeLimit());
        } else if (guardOn && done < target) {
            r = inconclusive(true, done, "the workload did not finish within " + options.timeLimit());
        } else {
            r = ReproResult.of(hazard(), guardOn, false, done, guardOn
                    ? "every request completed once on its home thread; foreign completion attempts were handed over"
                    : "no collision seen within the bounds");
        }
        return r.with("double_completions", w.doubleCompletions.get())
                .with("min_in_flight", w.minInFlight.get())
                .with("wrong_thread_completions", w.wrongThread.get())
                .with("engine_errors", w.engineErrors.get())
                .with("handed_over", w.ctx.foreignCompletions())
                .with("foreign_rounds", rounds)
                .with("stalled", failure != null)
                .with("engine", engineName());
    }

    private ReproResult inconclusive(boolean guardOn, long iterations, String detail) {
        return new ReproResult(hazard(), guardOn, ReproResult.Outcome.INCONCLUSIVE, iterations, detail,
                java.util.Map.of());
    }

    /**
     * The I/O workload and its checks.
     *
     * <p>Home thread: the IoThread for submission and the engine; the detection counters are
     * atomics because, with the guard off, the callback runs on both threads.
     */
    private static final class Workload implements IoRequest.Completion {
        final AioContext ctx;
        final int fd;
        final Arena arena;
        final IoRequest[] reqs = new IoRequest[DEPTH];
        final long[] iovAddr = new long[DEPTH];
        /** 1 while the repro considers request i in flight. */
        final AtomicIntegerArray inFlight = new AtomicIntegerArray(DEPTH);
        final AtomicLong completions = new AtomicLong();
        final AtomicLong doubleCompletions = new AtomicLong();
        final AtomicLong wrongThread = new AtomicLong();
        final AtomicLong engineErrors = new AtomicLong();
        final AtomicLong ioErrors = new AtomicLong();
        final AtomicLong minInFlight = new AtomicLong();
        final Semaphore kick = new Semaphore(0);
        final Bh refillBh;
        /** The foreign thread waits for a kick (guard on); the home thread's completions give it. */
        volatile boolean waiting;
        final long seed;
        SubmissionQueue queue;
        volatile boolean running = true;
        volatile String firstEngineError;
        long offsetCursor;
        boolean releasedCleanly;

        final AioMode aio;

        Workload(AioContext ctx, int fd, Arena arena, long seed, AioMode aio) {
            this.ctx = ctx;
            this.aio = aio;
            this.fd = fd;
            this.arena = arena;
            this.seed = seed;
            this.refillBh = ctx.bh("repro-refill", this::refill);
        }

        /** Home thread. */
        void open() {
            queue = aio == AioMode.IO_URING ? UringBackend.of(ctx) : LinuxAio.of(ctx, RING, false);
            MemorySegment bufs = arena.allocate((long) DEPTH * BLOCK, BLOCK);
            MemorySegment iovs = arena.allocate((long) DEPTH * IovecLayout.BYTES, 8);
            for (int i = 0; i < DEPTH; i++) {
                IovecLayout.write(iovs, i, bufs.address() + (long) i * BLOCK, BLOCK);
                IoRequest r = new IoRequest();
                r.ownerWord = i;
                iovAddr[i] = iovs.address() + (long) i * IovecLayout.BYTES;
                reqs[i] = r;
            }
            offsetCursor = seed & (FILE_BLOCKS - 1);
        }

        /** Home thread: submits every idle request while the run goes on. */
        void refill() {
            if (!running) {
                return;
            }
            for (int i = 0; i < DEPTH; i++) {
                IoRequest r = reqs[i];
                if (r.busy() || !inFlight.compareAndSet(i, 0, 1)) {
                    continue;
                }
                long off = (offsetCursor++ & (FILE_BLOCKS - 1)) * BLOCK;
                try {
                    queue.submit(r.readv(fd, iovAddr[i], 1, off, this), 0);
                } catch (RuntimeException e) {
                    // Guard off: the engine's state is already broken by the second thread.
                    inFlight.set(i, 0);
                    engineErrors.incrementAndGet();
                    firstEngineError = firstEngineError == null ? e.getMessage() : firstEngineError;
                }
            }
        }

        /** The detection: any thread the engine calls it on. */
        @Override
        public void aioCompleted(IoRequest req, long result) {
            int id = (int) req.ownerWord;
            if (!ctx.inHomeThread()) {
                wrongThread.incrementAndGet();
            }
            long engineInFlight = queue.inFlight();
            minInFlight.accumulateAndGet(engineInFlight, Math::min);
            if (!inFlight.compareAndSet(id, 1, 0)) {
                doubleCompletions.incrementAndGet();
                return; // never resubmit on a duplicate: that would put one request in flight twice
            }
            if (result != BLOCK) {
                ioErrors.incrementAndGet();
            }
            completions.incrementAndGet();
            if (running) {
                refillBh.schedule();
            }
            if (waiting) {
                kick.release();
            }
        }

        /** Two threads walked the same completions: a request completed twice or the count went backwards. */
        boolean collisionSeen() {
            return doubleCompletions.get() > 0 || minInFlight.get() < 0 || engineErrors.get() > 0;
        }

        boolean hazardSeen() {
            return collisionSeen() || wrongThread.get() > 0;
        }

        String describe() {
            if (doubleCompletions.get() > 0) {
                return doubleCompletions.get() + " requests completed twice; the engine's in_flight went down to "
                        + minInFlight.get();
            }
            if (minInFlight.get() < 0) {
                return "the engine's in_flight went backwards to " + minInFlight.get();
            }
            if (engineErrors.get() > 0) {
                return "the engine's state broke under the two threads (a request handed back twice, an unknown"
                        + " slot or a broken list): " + firstEngineError;
            }
            return wrongThread.get() + " completions ran on the wrong thread"
                    + (firstEngineError == null ? "" : "; the engine failed: " + firstEngineError);
        }

        /**
         * Caller's thread, after the second thread stopped: reaps on the home thread until the repro
         * has nothing in flight (bounded), then releases the engine if its counts are consistent.
         * Returns false when the engine was abandoned.
         */
        boolean tearDown(ReproOptions options) {
            long until = System.nanoTime() + options.hangAfter().toNanos();
            while (System.nanoTime() - until < 0) {
                int outstanding = AioContext.await(ctx.callOn(() -> {
                    try {
                        queue.completionEvent();
                    } catch (RuntimeException e) {
                        engineErrors.incrementAndGet();
                    }
                    int n = 0;
                    for (int i = 0; i < DEPTH; i++) {
                        n += inFlight.get(i);
                    }
                    return n;
                }), controlBound(options));
                if (outstanding == 0) {
                    break;
                }
            }
            releasedCleanly = AioContext.await(ctx.callOn(() -> {
                refillBh.delete();
                if (queue.inFlight() != 0 || queue.queued() != 0) {
                    return false;
                }
                for (IoRequest r : reqs) {
                    if (r.busy()) {
                        return false;
                    }
                }
                try {
                    queue.release();
                    return true;
                } catch (IllegalStateException e) {
                    // The backend's own slot count disagrees (io_uring checks it before closing
                    // anything): the queue is marked released, so nothing reaps again, and the
                    // ring stays mapped with the buffers it may still name.
                    return false;
                }
            }), controlBound(options));
            return releasedCleanly;
        }
    }

    /** {@code struct iovec}: base pointer and length. */
    private static final class IovecLayout {
        static final int BYTES = 16;
        static final int BASE = 0;
        static final int LEN = 8;

        private IovecLayout() {
        }

        static void write(MemorySegment iovs, int index, long base, long len) {
            long at = (long) index * BYTES;
            iovs.set(ValueLayout.JAVA_LONG, at + BASE, base);
            iovs.set(ValueLayout.JAVA_LONG, at + LEN, len);
        }
    }
}
