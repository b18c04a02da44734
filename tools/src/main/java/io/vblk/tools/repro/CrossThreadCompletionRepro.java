package io.vblk.tools.repro;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.Bh;
import io.vblk.aio.Guard;
import io.vblk.aio.IoThread;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Home thread: the caller's (no context's home thread); owns its IoThread and kernel thread.
 *
 * <p>Seed 002: completions of one context processed from two threads at once. A completion ring
 * modelled on Linux AIO's (the "kernel" thread appends finished request ids and publishes the
 * tail; the consumer walks from its head, completes each request, then advances) is owned by an
 * IoThread, whose completion bottom half processes it. Meanwhile a second thread drains the
 * requests, as QEMU's main thread did in {@code bdrv_drain}: with the guard off it polls the
 * other thread's completions itself, and both walk the same head — requests complete twice and
 * {@code in_flight} goes backwards, as in the seed's {@code in_flight = 4294967280}. With the guard
 * on, the ring's entry point asserts its home thread, so the drainer is refused, hands over to the
 * home thread with a bottom half and waits to be told it is drained.
 *
 * <p>Runs on the caller's thread (no context's home thread); owns its IoThread and kernel thread.
 */
public final class CrossThreadCompletionRepro implements Repro {
    private static final int RING = 256;

    @Override
    public String hazard() {
        return "cross-thread-completion";
    }

    @Override
    public String description() {
        return "seed 002: a second thread processes an IoThread's completions; requests complete twice";
    }

    @Override
    public ReproResult run(boolean guardOn, ReproOptions options) throws Exception {
        long deadline = System.nanoTime() + options.timeLimit().toNanos();
        try (IoThread io = IoThread.start("repro-iothread", AioOptions.DEFAULT)) {
            AioContext ctx = io.ctx();
            ctx.setGuard(Guard.HOME_THREAD, guardOn);
            Ring ring = AioContext.await(ctx.callOn(() -> new Ring(ctx)), options.hangAfter());
            long refused = 0;
            int i = 0;
            for (; i < options.iterations() && System.nanoTime() - deadline < 0; i++) {
                int batch = 8 + (i % 56);
                AioContext.await(ctx.callOn(() -> ring.submit(batch)), options.hangAfter());
                Thread kernel = new Thread(() -> ring.kernelComplete(batch), "repro-kernel");
                kernel.start();
                // The drainer: this thread wants every request finished before it goes on.
                long drainDeadline = System.nanoTime() + options.hangAfter().toNanos();
                boolean drained = false;
                try {
                    ring.processCompletions();
                    // Guard off: keep polling the other thread's completions until nothing is in flight.
                    while (ring.inFlight != 0 && System.nanoTime() - drainDeadline < 0) {
                        ring.processCompletions();
                    }
                    drained = ring.inFlight == 0;
                } catch (IllegalStateException refusedHere) {
                    // Guard on: not our state. Hand over and wait to be kicked by the home thread.
                    refused++;
                    CompletableFuture<Void> d = ring.whenDrained();
                    try {
                        d.get(options.hangAfter().toMillis(), TimeUnit.MILLISECONDS);
                        drained = true;
                    } catch (TimeoutException e) {
                        drained = false;
                    }
                }
                kernel.join(options.hangAfter().toMillis());
                String broken = AioContext.await(ctx.callOn(() -> ring.check(batch)), options.hangAfter());
                if (!drained && broken == null) {
                    broken = "drain did not finish: in_flight=" + ring.inFlight;
                }
                if (broken != null) {
                    return ReproResult.of(hazard(), guardOn, true, i + 1, broken)
                            .with("double_completions", ring.doubleCompletions)
                            .with("min_in_flight", ring.minInFlight);
                }
            }
            return ReproResult.of(hazard(), guardOn, false, i,
                            guardOn ? "every request completed once on its home thread; foreign calls were refused and handed over"
                                    : "no collision seen within the bounds")
                    .with("refused", refused);
        }
    }

    /**
     * The completion state of one context: ring cursors, in-flight count and per-request flags,
     * plain fields as in QEMU's LinuxAioState.
     *
     * <p>Home thread: the IoThread. No locking — which is exactly what seed 002 breaks.
     */
    static final class Ring {
        private static final VarHandle TAIL;

        static {
            try {
                TAIL = MethodHandles.lookup().findVarHandle(Ring.class, "tail", int.class);
            } catch (ReflectiveOperationException e) {
                throw new ExceptionInInitializerError(e);
            }
        }

        final AioContext ctx;
        final int[] slots = new int[RING];
        final byte[] completed = new byte[RING];
        final Bh completionBh;
        @SuppressWarnings("unused") // through TAIL
        private volatile int tail;
        int head;
        int inFlight;
        int minInFlight;
        long doubleCompletions;
        int submitted;
        CompletableFuture<Void> drainedSignal;
        long sink;

        Ring(AioContext ctx) {
            this.ctx = ctx;
            this.completionBh = ctx.bh("completion", this::processCompletions);
        }

        /** Home thread. */
        int submit(int n) {
            ctx.assertHome();
            java.util.Arrays.fill(completed, (byte) 0);
            submitted = n;
            inFlight += n;
            return n;
        }

        /**
         * The kernel: finishes requests 0..n-1 in bursts of up to 16 and notifies after each burst,
         * as the AIO completion eventfd does.
         */
        void kernelComplete(int n) {
            for (int id = 0; id < n; ) {
                int t = (int) TAIL.getAcquire(this);
                int burst = Math.min(16, n - id);
                for (int k = 0; k < burst; k++) {
                    slots[(t + k) & (RING - 1)] = id + k;
                }
                id += burst;
                // Pairs with the getAcquire in processCompletions: the slots are visible before the tail.
                TAIL.setRelease(this, t + burst);
                completionBh.schedule();
            }
        }

        /** Walks the ring from head to tail; home thread. Public entry point: checks its caller. */
        void processCompletions() {
            ctx.assertHome();
            int t = (int) TAIL.getAcquire(this);
            // Walk while behind the tail (as QEMU's event_idx < event_max). A cursor pushed past the
            // tail by a second consumer then stops here instead of wrapping all the way round.
            while (t - head > 0) {
                int id = slots[head & (RING - 1)];
                complete(id);
                head++;
            }
            if (inFlight == 0 && drainedSignal != null) {
                CompletableFuture<Void> d = drainedSignal;
                drainedSignal = null;
                d.complete(null);
            }
        }

        private void complete(int id) {
            if (completed[id] != 0) {
                doubleCompletions++;
            }
            completed[id] = 1;
            // The completion callback's work (copying status, waking the submitter).
            for (int k = 0; k < 2000; k++) {
                sink += k ^ id;
            }
            inFlight--;
            if (inFlight < minInFlight) {
                minInFlight = inFlight;
            }
        }

        /** Called from the drainer: the future completes on the home thread once nothing is in flight. */
        CompletableFuture<Void> whenDrained() {
            CompletableFuture<Void> f = new CompletableFuture<>();
            ctx.runOn(() -> {
                if (inFlight == 0) {
                    f.complete(null);
                } else {
                    drainedSignal = f;
                    completionBh.schedule();
                }
            });
            return f;
        }

        /** Home thread: null when every request of the batch completed exactly once. */
        String check(int n) {
            if (doubleCompletions > 0) {
                return doubleCompletions + " requests completed twice; in_flight went down to " + minInFlight;
            }
            if (minInFlight < 0 || inFlight != 0) {
                return "in_flight went backwards to " + minInFlight + " (now " + inFlight + ")";
            }
            for (int id = 0; id < n; id++) {
                if (completed[id] == 0) {
                    return "request " + id + " never completed";
                }
            }
            return null;
        }
    }
}
