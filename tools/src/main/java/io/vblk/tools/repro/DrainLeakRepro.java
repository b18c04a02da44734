package io.vblk.tools.repro;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.Guard;
import io.vblk.aio.Timer;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.ForwardingBlockDriver;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.node.BlockNode;
import io.vblk.drivers.nullblk.NullDriver;
import io.vblk.virtio.blk.BlkDeviceConfig;
import io.vblk.virtio.blk.BlkQueueStats;
import io.vblk.guest.GuestBlkDriver;
import io.vblk.guest.InProcessBlk;
import io.vblk.guest.Workload;
import io.vblk.guest.WorkloadResult;
import io.vblk.guest.WorkloadRun;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.function.LongSupplier;

/**
 * Any thread that is no context's home thread (the CLI's main thread, a test). The job itself
 * lives on the main loop; the device's queue on an IoThread.
 *
 * <p>Seed 003, "drain-leak": a block job on the main loop holds a drained section of the device's
 * block node around a final step that needs the device quiet (as mirror's completion switches to
 * the target), while the emulated guest keeps writing at full rate to a queue that runs on an
 * IoThread — two contexts, as in the seed, where the host notifier ran on a context the old drain
 * did not cover. The job waits until the node's drain has completed (nothing in flight on any
 * IoThread) and the guest has posted (and kicked) new requests, and runs its final step, which
 * checks that no request reached the driver since the section began — the invariant QEMU later
 * asserted at {@code bdrv_replace_in_backing_chain}.
 *
 * <ul>
 *   <li>Guard off ({@code Guard.DRAIN_STOPS_DEVICES} off on the queue's IoThread: the device does
 *       not stop when its node is drained, as in seed 003): the queue's kick handler keeps taking
 *       the guest's requests inside the section; the final step sees one start there —
 *       {@code reproduced}.</li>
 *   <li>Guard on: the node's drained section stops the queue on its IoThread, no request starts
 *       inside it, and ending the section re-checks the ring, so every request the guest posted
 *       meanwhile completes — none lost — {@code held}.</li>
 * </ul>
 *
 * <p>{@link Mode#MIRROR} runs the same hazard on the real mirror pivot ({@link MirrorPivotRepro}).
 */
public final class DrainLeakRepro implements Repro {
    /** Which scenario runs: a held drained section (the default), or the real mirror pivot. */
    public enum Mode { SECTION, MIRROR }

    private final Mode mode;

    public DrainLeakRepro() {
        this(Mode.SECTION);
    }

    public DrainLeakRepro(Mode mode) {
        this.mode = mode;
    }

    /** How often the job looks whether the device is quiet and the guest has posted. */
    private static final long STEP_NANOS = 50_000;
    /** Gap between sections, so the guest's loop runs between them. */
    private static final long GAP_NANOS = 500_000;
    /** Longest a section is held waiting for quiet and guest pressure. */
    private static final long HOLD_NANOS = 20_000_000;
    private static final int QUEUE_DEPTH = 16;

    @Override
    public String hazard() {
        return "drain-leak";
    }

    @Override
    public String description() {
        return "guest requests sneak into a drained section before the job's final step (seed 003)";
    }

    @Override
    public ReproResult run(boolean guardOn, ReproOptions options) throws Exception {
        if (mode == Mode.MIRROR) {
            return MirrorPivotRepro.run(hazard(), guardOn, options);
        }
        long deadline = System.nanoTime() + options.timeLimit().toNanos();
        ObservedDriver driver = new ObservedDriver(new NullDriver(64L << 20, NullDriver.Completion.ASYNC));
        BlkDeviceConfig cfg = new BlkDeviceConfig().numQueues(1).queueSize(256);
        try (InProcessBlk dev = InProcessBlk.start(driver, cfg, 1, AioOptions.DEFAULT)) {
            AioContext main = dev.control().ctx();
            AioContext io = dev.queueContext(0);
            AioContext.await(io.callOn(() -> {
                io.setGuard(Guard.DRAIN_STOPS_DEVICES, guardOn);
                return null;
            }), options.hangAfter());
            GuestBlkDriver guest = GuestBlkDriver.attach(dev.transport(),
                    GuestBlkDriver.Options.defaults().withSlots(QUEUE_DEPTH).withMaxDataBytes(4096));
            WorkloadResult result;
            DrainJob job;
            try {
                Workload w = Workload.of(Workload.Pattern.RANDWRITE).withQueueDepth(QUEUE_DEPTH).withSeed(options.seed())
                        .withDuration(options.timeLimit().toNanos() + options.hangAfter().toNanos())
                        .withStallNanos(options.hangAfter().toNanos());
                WorkloadRun run = WorkloadRun.start(guest, w);
                BlkQueueStats st = dev.device().queueStats(0);
                job = AioContext.await(main.callOn(() -> {
                    DrainJob j = new DrainJob(main, io, dev.device().node(), driver, run::posted,
                            () -> st.completed() + st.inFlight(), options.iterations(), deadline, !guardOn);
                    j.start();
                    return j;
                }), options.hangAfter());
                try {
                    AioContext.await(job.done, options.timeLimit().plus(options.hangAfter()));
                } finally {
                    // Stops the job wherever it is (ending an open section) so the loops can close.
                    AioContext.await(main.callOn(job::cancel), options.hangAfter());
                    run.stop();
                    result = run.await(options.hangAfter().multipliedBy(2));
                }
            } finally {
                guest.close();
            }
            long lost = result.total().posted - result.total().completed;
            boolean leaked = job.startedInside > 0;
            String detail;
            if (leaked) {
                detail = job.startedInside + " guest requests reached the driver inside " + job.leakySections
                        + " drained sections, before the job's final step";
            } else if (!result.ok() || lost > 0) {
                detail = "requests posted during drained sections were lost: " + lost + " never completed ("
                        + result.error() + ")";
            } else {
                detail = "no request started inside " + job.sections + " drained sections; guest requests waited in"
                        + " the ring during " + job.pressured + " of them and all " + result.total().completed
                        + " requests completed";
            }
            // Only a request inside a section is the hazard; a lost request or a failed workload
            // without one shows neither outcome.
            ReproResult r = leaked || (result.ok() && lost == 0)
                    ? ReproResult.of(hazard(), guardOn, leaked, job.sections, detail)
                    : ReproResult.inconclusive(hazard(), guardOn, job.sections, detail);
            return r.with("sections", job.sections)
                    .with("sections_with_guest_waiting", job.pressured)
                    .with("started_inside", job.startedInside)
                    // The product's own count (vblk.guard.drained.requests.started): requests the queue took while drained.
                    .with("started_inside_meter", dev.device().queueStats(0).startedDrained())
                    .with("requests", result.total().completed)
                    .with("lost", lost)
                    .with("seed", options.seed());
        }
    }

    /**
     * The block job: repeated drained sections of the node, each ended by the final step. Home
     * thread: the main loop. No locking: what it needs from the queue's IoThread (the driver's
     * counter, the queue's progress) it asks for there with a hand-over and hears back here. The
     * CLI thread reads the counters after {@link #done}.
     */
    static final class DrainJob {
        private final AioContext main;
        private final AioContext io;
        private final BlockNode node;
        private final ObservedDriver driver;
        private final LongSupplier guestPosted;
        private final LongSupplier deviceTaken;
        private final long deadline;
        private final boolean stopOnLeak;
        private final Timer timer;
        private int iterationsLeft;
        private boolean inSection;
        private boolean cancelled;
        private CompletableFuture<Void> quiesced;
        private long sectionBegin;
        private boolean guestWaiting;

        final CompletableFuture<Void> done = new CompletableFuture<>();
        long sections;
        long pressured;
        long leakySections;
        long startedInside;

        /**
         * @param guestPosted requests the guest has made available (published at its kicks; any thread)
         * @param deviceTaken requests the device has popped from the ring (read on {@code io})
         */
        DrainJob(AioContext main, AioContext io, BlockNode node, ObservedDriver driver, LongSupplier guestPosted,
                 LongSupplier deviceTaken, int iterations, long deadline, boolean stopOnLeak) {
            this.main = main;
            this.io = io;
            this.node = node;
            this.driver = driver;
            this.guestPosted = guestPosted;
            this.deviceTaken = deviceTaken;
            this.iterationsLeft = iterations;
            this.deadline = deadline;
            this.stopOnLeak = stopOnLeak;
            this.timer = main.timer("drain-leak.job", this::onTimer);
        }

        void start() {
            timer.armIn(GAP_NANOS);
        }

        /** Stops the job; an open section is ended as the final step would. Returns null for callOn. */
        Void cancel() {
            main.assertHome();
            cancelled = true;
            timer.cancel();
            if (inSection) {
                inSection = false;
                io.runOn(() -> driver.watch(false));
                node.drainedEnd();
            }
            done.complete(null);
            return null;
        }

        private void onTimer() {
            try {
                if (inSection) {
                    step();
                } else {
                    begin();
                }
            } catch (RuntimeException e) {
                done.completeExceptionally(e);
            }
        }

        /** bdrv_drained_begin on the main loop: from here on, the device must take no guest request. */
        private void begin() {
            if (iterationsLeft-- <= 0 || System.nanoTime() - deadline > 0) {
                done.complete(null);
                return;
            }
            quiesced = node.drainedBegin();
            inSection = true;
            // The driver counts from the queue's stop on: both this and the device's stop (handed over
            // in DeviceDrain.drainedBegin, just above) are tasks from this thread to the IoThread,
            // which runs them in order. Pairs with the device's hand-over of its stop.
            io.runOn(() -> driver.watch(true));
            guestWaiting = false;
            sectionBegin = System.nanoTime();
            timer.armIn(STEP_NANOS);
        }

        /**
         * Asks the IoThread, inside the section, whether a request reached the driver and whether
         * guest requests wait in the ring; {@link #decide} goes on with the answer here.
         */
        private void step() {
            io.runOn(() -> {
                long started = driver.started;
                boolean waiting = guestPosted.getAsLong() - deviceTaken.getAsLong() > 0;
                main.runOn(() -> decide(started, waiting));
            });
        }

        /**
         * Waits for the node's drain to complete while guest requests wait in the ring (so the guard
         * has something to hold back); a request that reaches the driver ends the wait at once, as
         * the broken invariant it is.
         */
        private void decide(long started, boolean waiting) {
            if (cancelled || !inSection) {
                return;
            }
            guestWaiting |= waiting;
            if (started > 0 || (quiesced.isDone() && guestWaiting) || System.nanoTime() - sectionBegin > HOLD_NANOS) {
                io.runOn(() -> {
                    long s = driver.started;
                    driver.watch(false);
                    main.runOn(() -> finalStep(s));
                });
            } else {
                timer.armIn(STEP_NANOS);
            }
        }

        /** As mirror_exit: needs that nothing started since drained-begin; then drained-end. */
        private void finalStep(long started) {
            if (cancelled || !inSection) {
                return;
            }
            sections++;
            if (guestWaiting) {
                pressured++;
            }
            if (started > 0) {
                leakySections++;
                startedInside += started;
            }
            inSection = false;
            node.drainedEnd();
            if (started > 0 && stopOnLeak) {
                done.complete(null);
            } else {
                timer.armIn(GAP_NANOS);
            }
        }
    }

    /**
     * The real driver with a counter in front of its submission path: how many requests reach it
     * while {@link #watch} is on. Home thread: the queue's IoThread (the repro uses one).
     */
    static final class ObservedDriver extends ForwardingBlockDriver {
        private boolean watching;
        long started;

        ObservedDriver(BlockDriver inner) {
            super(inner);
        }

        void watch(boolean on) {
            watching = on;
            started = 0;
        }

        @Override
        public BlockChannel openChannel(AioContext ctx) {
            return new ObservedChannel(inner.openChannel(ctx));
        }

        private final class ObservedChannel implements BlockChannel {
            private final BlockChannel ch;

            ObservedChannel(BlockChannel ch) {
                this.ch = ch;
            }

            @Override
            public AioContext context() {
                return ch.context();
            }

            @Override
            public void submit(BlockIo io) {
                if (watching) {
                    started++;
                }
                ch.submit(io);
            }

            @Override
            public int inFlight() {
                return ch.inFlight();
            }

            @Override
            public void drain(Runnable whenIdle) {
                ch.drain(whenIdle);
            }

            @Override
            public void close() {
                ch.close();
            }
        }
    }

    /** The bound a caller should allow for {@link #run}. */
    public static Duration bound(ReproOptions o) {
        return o.timeLimit().plus(o.hangAfter().multipliedBy(4));
    }
}
