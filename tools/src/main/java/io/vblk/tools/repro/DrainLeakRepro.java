package io.vblk.tools.repro;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.Guard;
import io.vblk.aio.Timer;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.ForwardingBlockDriver;
import io.vblk.drivers.BlockIo;
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
 * lives on the queue's IoThread.
 *
 * <p>Seed 003, "drain-leak": a block job holds a drained section around a final step that needs the
 * device quiet (as mirror's completion switches to the target), while the emulated guest keeps
 * writing at full rate. The section is begun on the queue's IoThread context; the job then waits
 * until nothing is in flight at the driver and the guest has posted (and kicked) new requests, and
 * runs its final step, which checks that no request reached the driver since the section began —
 * the invariant QEMU later asserted at {@code bdrv_replace_in_backing_chain}.
 *
 * <ul>
 *   <li>Guard off ({@code Guard.DRAIN_EXTERNAL} off: drained sections leave external handlers
 *       live, as in seed 003): the queue's kick handler keeps taking the guest's requests inside
 *       the section; the final step sees one start there — {@code reproduced}.</li>
 *   <li>Guard on: the kick handler is off inside the section, no request starts there, and
 *       ending the section re-runs it, so every request the guest posted meanwhile completes —
 *       none lost — {@code held}.</li>
 * </ul>
 */
public final class DrainLeakRepro implements Repro {
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
        long deadline = System.nanoTime() + options.timeLimit().toNanos();
        ObservedDriver driver = new ObservedDriver(new NullDriver(64L << 20, NullDriver.Completion.ASYNC));
        BlkDeviceConfig cfg = new BlkDeviceConfig().numQueues(1).queueSize(256);
        try (InProcessBlk dev = InProcessBlk.start(driver, cfg, 1, AioOptions.DEFAULT)) {
            AioContext ctx = dev.queueContext(0);
            AioContext.await(ctx.callOn(() -> {
                ctx.setGuard(Guard.DRAIN_EXTERNAL, guardOn);
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
                job = AioContext.await(ctx.callOn(() -> {
                    BlkQueueStats st = dev.device().queueStats(0);
                    DrainJob j = new DrainJob(ctx, driver, run::posted, () -> st.completed() + st.inFlight(),
                            options.iterations(), deadline, !guardOn);
                    j.start();
                    return j;
                }), options.hangAfter());
                try {
                    AioContext.await(job.done, options.timeLimit().plus(options.hangAfter()));
                } finally {
                    // Stops the job wherever it is (ending an open section) so the loop can close.
                    AioContext.await(ctx.callOn(job::cancel), options.hangAfter());
                    run.stop();
                    result = run.await(options.hangAfter().multipliedBy(2));
                }
            } finally {
                guest.close();
            }
            long lost = result.total().posted - result.total().completed;
            boolean leaked = job.startedInside > 0;
            boolean hazard = leaked || lost > 0 || !result.ok();
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
            return ReproResult.of(hazard(), guardOn, hazard, job.sections, detail)
                    .with("sections", job.sections)
                    .with("sections_with_guest_waiting", job.pressured)
                    .with("started_inside", job.startedInside)
                    .with("requests", result.total().completed)
                    .with("lost", lost)
                    .with("seed", options.seed());
        }
    }

    /**
     * The block job: repeated drained sections, each ended by the final step. Home thread: the
     * queue's IoThread. No locking; the main thread reads the counters after {@link #done}.
     */
    static final class DrainJob {
        private final AioContext ctx;
        private final ObservedDriver driver;
        private final LongSupplier guestPosted;
        private final LongSupplier deviceTaken;
        private final long deadline;
        private final boolean stopOnLeak;
        private final Timer timer;
        private int iterationsLeft;
        private boolean inSection;
        private long sectionBegin;
        private boolean guestWaiting;

        final CompletableFuture<Void> done = new CompletableFuture<>();
        long sections;
        long pressured;
        long leakySections;
        long startedInside;

        /**
         * @param guestPosted requests the guest has made available (published at its kicks)
         * @param deviceTaken requests the device has popped from the ring (read here, on its thread)
         */
        DrainJob(AioContext ctx, ObservedDriver driver, LongSupplier guestPosted, LongSupplier deviceTaken,
                 int iterations, long deadline, boolean stopOnLeak) {
            this.ctx = ctx;
            this.driver = driver;
            this.guestPosted = guestPosted;
            this.deviceTaken = deviceTaken;
            this.iterationsLeft = iterations;
            this.deadline = deadline;
            this.stopOnLeak = stopOnLeak;
            this.timer = ctx.timer("drain-leak.job", this::onTimer);
        }

        void start() {
            timer.armIn(GAP_NANOS);
        }

        /** Stops the job; an open section is ended as the final step would. Returns null for callOn. */
        Void cancel() {
            timer.cancel();
            if (inSection) {
                driver.watch(false);
                inSection = false;
                ctx.drainedEnd();
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

        /** bdrv_drained_begin: from here on, the device must take no guest request. */
        private void begin() {
            if (iterationsLeft-- <= 0 || System.nanoTime() - deadline > 0) {
                done.complete(null);
                return;
            }
            ctx.drainedBegin();
            inSection = true;
            driver.watch(true);
            guestWaiting = false;
            sectionBegin = System.nanoTime();
            timer.armIn(STEP_NANOS);
        }

        /**
         * Waits, inside the section, for the device to be quiet while guest requests wait in the
         * ring (so the guard has something to hold back); a request that reaches the driver ends
         * the wait at once, as the broken invariant it is.
         */
        private void step() {
            boolean quiet = driver.inFlight() == 0;
            if (guestPosted.getAsLong() - deviceTaken.getAsLong() > 0) {
                guestWaiting = true;
            }
            if (driver.started > 0 || (quiet && guestWaiting) || System.nanoTime() - sectionBegin > HOLD_NANOS) {
                finalStep(guestWaiting);
            } else {
                timer.armIn(STEP_NANOS);
            }
        }

        /** As mirror_exit: needs that nothing started since drained-begin; then drained-end. */
        private void finalStep(boolean waiting) {
            long started = driver.started;
            driver.watch(false);
            sections++;
            if (waiting) {
                pressured++;
            }
            if (started > 0) {
                leakySections++;
                startedInside += started;
            }
            inSection = false;
            ctx.drainedEnd();
            if (started > 0 && stopOnLeak) {
                done.complete(null);
            } else {
                timer.armIn(GAP_NANOS);
            }
        }
    }

    /**
     * The real driver with a counter in front of its submission path: how many requests reach it
     * while {@link #watch} is on. Home thread of each channel: its IoThread (the repro uses one).
     */
    static final class ObservedDriver extends ForwardingBlockDriver {
        private boolean watching;
        long started;
        private ObservedChannel channel;

        ObservedDriver(BlockDriver inner) {
            super(inner);
        }

        void watch(boolean on) {
            watching = on;
            started = 0;
        }

        int inFlight() {
            return channel == null ? 0 : channel.inFlight();
        }

        @Override
        public BlockChannel openChannel(AioContext ctx) {
            ObservedChannel c = new ObservedChannel(inner.openChannel(ctx));
            channel = c;
            return c;
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
