package io.vblk.tools.repro;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.Bh;
import io.vblk.aio.Guard;
import io.vblk.aio.IoThread;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.IoCompletion;
import io.vblk.drivers.rbd.RbdDriver;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Home thread: the caller's (no context's home thread); owns its IoThread, its rbd driver and
 * channel, and its buffers.
 *
 * <p>Seed 002 in its most common form, on the product's rbd driver: librbd completes requests on
 * its own threads. An {@link RbdDriver} channel on an IoThread reads an existing image (opened
 * read-only: no exclusive lock, nothing written) with {@link #DEPTH} 4 KiB reads in flight; every
 * completion makes the IoThread submit the next read (a bottom half).
 * <ul>
 *   <li>guard off ({@link Guard#HOME_THREAD} off on this context): the driver processes each
 *       librbd completion on the librbd thread where it lands — the channel's request pool, its
 *       in-flight count and the submitter's completion run there while the IoThread submits. The
 *       repro's completion callback counts completions off the home thread (what the home-thread
 *       assertion would have refused), requests completed twice, and at the end the channel's own
 *       in-flight count, which the two threads' unsynchronised updates leave wrong;</li>
 *   <li>guard on: the callback only hands the request over (lock-free stack + bottom half) and every
 *       completion runs once, on the IoThread, for the whole run.</li>
 * </ul>
 *
 * <p>The run stops after {@code iterations} completions, at the first request completed twice, or
 * when nothing completed for {@code hangAfter} (a request lost by the broken pool); all bounded by
 * {@code timeLimit}. Teardown closes the channel and driver only when the counts are consistent;
 * otherwise it abandons them (librbd may still call back into the buffers) and says so.
 */
public final class CrossThreadCompletionRbdRepro implements Repro {
    /** Reads in flight. */
    static final int DEPTH = 32;
    private static final int BLOCK = 4096;

    private final RbdDriver.Options image;

    /** On {@code image} (opened read-only whatever the options say). */
    public CrossThreadCompletionRbdRepro(RbdDriver.Options image) {
        this.image = new RbdDriver.Options(image.pool(), image.image(), image.namespace(), image.snapshot(), image.conf(),
                image.user(), image.key(), true);
    }

    @Override
    public String hazard() {
        return "cross-thread-completion";
    }

    @Override
    public String description() {
        return "seed 002 on rbd: librbd's completion processed on the librbd thread where it lands";
    }

    @Override
    public ReproResult run(boolean guardOn, ReproOptions options) throws Exception {
        RbdDriver driver;
        try {
            driver = RbdDriver.open(image); // control plane: network round trips, off any loop
        } catch (IllegalArgumentException | IllegalStateException e) {
            return ReproResult.inconclusive(hazard(), guardOn, 0, "cannot open the image: " + e.getMessage())
                    .with("engine", "rbd");
        }
        if (driver.length() < (long) BLOCK * DEPTH) {
            driver.close();
            return ReproResult.inconclusive(hazard(), guardOn, 0, "the image is smaller than " + BLOCK * DEPTH + " bytes")
                    .with("engine", "rbd");
        }
        Arena arena = Arena.ofShared();
        IoThread io = IoThread.start("repro-rbd-iothread", AioOptions.DEFAULT);
        AioContext ctx = io.ctx();
        ctx.setGuard(Guard.HOME_THREAD, guardOn);
        Workload w = new Workload(ctx, driver, arena, options.seed());
        boolean released = false;
        try {
            AioContext.await(ctx.callOn(() -> {
                w.open();
                return null;
            }), CrossThreadCompletionRepro.controlBound(options));
            ReproResult r = drive(w, guardOn, options);
            released = w.tearDown(options);
            return r.with("channel_in_flight_end", w.channelInFlightEnd).with("teardown", released ? "released" : "abandoned");
        } finally {
            if (released) {
                io.close();
                driver.close();
                arena.close();
            }
            // Abandoned: librbd may still complete a request into these buffers and this channel;
            // the driver, the IoThread and the buffers stay until the process exits.
        }
    }

    private ReproResult drive(Workload w, boolean guardOn, ReproOptions options) throws Exception {
        long deadline = System.nanoTime() + options.timeLimit().toNanos();
        long target = options.iterations();
        AioContext.await(w.ctx.callOn(() -> {
            w.refill();
            return null;
        }), CrossThreadCompletionRepro.controlBound(options));
        String failure = null;
        while (w.completions.get() < target && System.nanoTime() - deadline < 0 && w.doubleCompletions.get() == 0) {
            // This thread only watches: each completion (on the IoThread, or guard off on librbd's
            // thread) releases a permit; none for hangAfter is a stall.
            w.progress.drainPermits();
            if (w.completions.get() < target
                    && !w.progress.tryAcquire(options.hangAfter().toNanos(), TimeUnit.NANOSECONDS)) {
                failure = "no request completed for " + options.hangAfter();
                break;
            }
        }
        w.running = false;
        long done = w.completions.get();
        ReproResult r;
        if (w.hazardSeen()) {
            r = ReproResult.of(hazard(), guardOn, true, done, w.describe());
        } else if (failure != null) {
            r = ReproResult.inconclusive(hazard(), guardOn, done, failure);
        } else if (w.ioErrors.get() > 0) {
            r = ReproResult.inconclusive(hazard(), guardOn, done, w.ioErrors.get() + " reads failed or were short");
        } else if (done < target) {
            r = guardOn ? ReproResult.inconclusive(hazard(), true, done, "the workload did not finish within " + options.timeLimit())
                    : ReproResult.of(hazard(), false, false, done, "no completion off the home thread within " + options.timeLimit());
        } else {
            r = ReproResult.of(hazard(), guardOn, false, done, guardOn
                    ? "every librbd completion was handed to the IoThread and completed once there"
                    : "no completion off the home thread within the bounds");
        }
        return r.with("wrong_thread_completions", w.wrongThread.get())
                .with("double_completions", w.doubleCompletions.get())
                .with("stalled", failure != null)
                .with("engine", "rbd");
    }

    /**
     * The read workload and its checks.
     *
     * <p>Home thread: the IoThread for submission; the detection counters are atomics because, with
     * the guard off, the callback runs on librbd's threads.
     */
    private static final class Workload implements IoCompletion {
        final AioContext ctx;
        final RbdDriver driver;
        final Arena arena;
        final long seed;
        final BlockIo[] ios = new BlockIo[DEPTH];
        final long[] buffers = new long[DEPTH];
        /** 1 while the repro considers request i in flight. */
        final AtomicIntegerArray inFlight = new AtomicIntegerArray(DEPTH);
        final AtomicLong completions = new AtomicLong();
        final AtomicLong doubleCompletions = new AtomicLong();
        final AtomicLong wrongThread = new AtomicLong();
        final AtomicLong ioErrors = new AtomicLong();
        /** A permit per completion: what the watching thread waits on. */
        final Semaphore progress = new Semaphore(0);
        final Bh refillBh;
        final long blocks;
        volatile boolean running = true;
        BlockChannel channel;
        long cursor;
        /** The channel's own in-flight count once the repro saw every request back (0 when consistent). */
        volatile int channelInFlightEnd = Integer.MIN_VALUE;

        Workload(AioContext ctx, RbdDriver driver, Arena arena, long seed) {
            this.ctx = ctx;
            this.driver = driver;
            this.arena = arena;
            this.seed = seed;
            this.blocks = driver.length() / BLOCK;
            this.refillBh = ctx.bh("repro-rbd-refill", this::refill);
        }

        /** Home thread. */
        void open() {
            channel = driver.openChannel(ctx);
            MemorySegment bufs = arena.allocate((long) DEPTH * BLOCK, BLOCK);
            for (int i = 0; i < DEPTH; i++) {
                ios[i] = new BlockIo(arena, 1);
                ios[i].tag = i;
                buffers[i] = bufs.address() + (long) i * BLOCK;
            }
            cursor = Math.floorMod(seed, blocks);
        }

        /** Home thread: submits every idle request while the run goes on. */
        void refill() {
            if (!running) {
                return;
            }
            for (int i = 0; i < DEPTH; i++) {
                if (!inFlight.compareAndSet(i, 0, 1)) {
                    continue;
                }
                long off = (cursor++ % blocks) * BLOCK;
                BlockIo b = ios[i].rw(BlockIo.READ, off, this);
                b.iov.add(buffers[i], BLOCK);
                try {
                    channel.submit(b);
                } catch (RuntimeException e) {
                    // Guard off: the channel's state may already be broken by librbd's thread.
                    inFlight.set(i, 0);
                    ioErrors.incrementAndGet();
                }
            }
        }

        /** The detection: whichever thread the channel completes on. */
        @Override
        public void ioCompleted(BlockIo io, long result) {
            int id = io.tag;
            if (!ctx.inHomeThread()) {
                wrongThread.incrementAndGet();
            }
            if (!inFlight.compareAndSet(id, 1, 0)) {
                doubleCompletions.incrementAndGet();
                return;
            }
            if (result != BLOCK) {
                ioErrors.incrementAndGet();
            }
            completions.incrementAndGet();
            if (running) {
                refillBh.schedule();
            }
            progress.release();
        }

        boolean hazardSeen() {
            return wrongThread.get() > 0 || doubleCompletions.get() > 0;
        }

        String describe() {
            return wrongThread.get() + " completions ran on a librbd thread instead of the IoThread"
                    + (doubleCompletions.get() > 0 ? "; " + doubleCompletions.get() + " requests completed twice" : "");
        }

        /**
         * Caller's thread, after the run: waits (bounded) until every read is back, then closes the
         * channel on the home thread if its count agrees. False when the channel was abandoned.
         */
        boolean tearDown(ReproOptions options) {
            long until = System.nanoTime() + options.hangAfter().multipliedBy(2).toNanos();
            int outstanding = DEPTH;
            while (System.nanoTime() - until < 0) {
                progress.drainPermits();
                outstanding = 0;
                for (int i = 0; i < DEPTH; i++) {
                    outstanding += inFlight.get(i);
                }
                if (outstanding == 0) {
                    break;
                }
                try {
                    progress.tryAcquire(options.hangAfter().toNanos(), TimeUnit.NANOSECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    break;
                }
            }
            int left = outstanding;
            return AioContext.await(ctx.callOn(() -> {
                refillBh.delete();
                channelInFlightEnd = channel.inFlight();
                if (left != 0 || channelInFlightEnd != 0) {
                    return false;
                }
                channel.close();
                return true;
            }), CrossThreadCompletionRepro.controlBound(options));
        }
    }
}
