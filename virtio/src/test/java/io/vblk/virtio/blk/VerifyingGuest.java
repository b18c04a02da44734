package io.vblk.virtio.blk;

import io.vblk.aio.AioContext;
import io.vblk.drivers.job.Job;
import io.vblk.guest.GuestBlkDriver;
import io.vblk.guest.InProcessBlk;
import io.vblk.guest.Workload;
import io.vblk.guest.WorkloadResult;
import io.vblk.guest.WorkloadRun;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Any thread (test code); the emulated guest's load runs on its vCPU threads.
 *
 * <p>The guest of the job-under-a-guest tests: attached to an {@link InProcessBlk} with 2 queues
 * of 32 slots, writing verified 4 KiB blocks at random at queue depth 32 per queue. Closing it
 * stops the load, keeps its {@link #result()} and closes the guest (in a try-with-resources, a
 * failure while closing is added to the test's own failure).
 */
final class VerifyingGuest implements AutoCloseable {
    static final int BLOCK = 4096;

    private final GuestBlkDriver guest;
    private final Duration t;
    private final WorkloadRun run;
    private WorkloadResult result;

    private VerifyingGuest(GuestBlkDriver guest, long seed, Duration t) {
        this.guest = guest;
        this.t = t;
        this.run = WorkloadRun.start(guest, Workload.of(Workload.Pattern.RANDWRITE).withQueueDepth(32)
                .withBlockSize(BLOCK).withVerify(true).withSeed(seed).withDuration(t.toNanos())
                .withStallNanos(Duration.ofSeconds(10).toNanos()));
    }

    /** Attaches the guest to {@code dev} and starts its load (seed {@code seed}, for up to {@code t}). */
    static VerifyingGuest start(InProcessBlk dev, long seed, Duration t) {
        GuestBlkDriver g = GuestBlkDriver.attach(dev.transport(), GuestBlkDriver.Options.defaults().withQueues(2)
                .withSlots(32).withMaxDataBytes(BLOCK));
        try {
            return new VerifyingGuest(g, seed, t);
        } catch (RuntimeException e) {
            g.close();
            throw e;
        }
    }

    /** Writes {@code src} ({@code size} random bytes from {@code seed}) and an empty {@code dst}. */
    static void writeImages(Path src, Path dst, long seed, long size) throws Exception {
        byte[] initial = new byte[(int) size];
        new Random(seed).nextBytes(initial);
        Files.write(src, initial);
        Files.write(dst, new byte[(int) size]);
    }

    /** Waits for {@code f}; a hang is reported with the job's state, read on its loop {@code main}. */
    static <X> X awaitJob(CompletableFuture<X> f, AioContext main, Job job, String what, Duration t) {
        try {
            return AioContext.await(f, t);
        } catch (CompletionException e) {
            throw new AssertionError(AioContext.await(main.callOn(job::type), t) + " not " + what + " within " + t + ": "
                    + AioContext.await(main.callOn(job::toString), t), e);
        }
    }

    /** The load's completions so far. */
    long completed() {
        return run.completed();
    }

    /** Waits for {@code n} completions; the load's early end is a failure naming {@code when}. */
    void awaitProgress(long n, String when) throws InterruptedException {
        long deadline = System.nanoTime() + t.toNanos();
        while (run.completed() < n) {
            if (run.isDone()) {
                throw new AssertionError("guest stopped early (" + when + "): " + run.await(t).error());
            }
            assertThat(System.nanoTime()).as("guest reached %d completions", n).isLessThan(deadline);
            Thread.onSpinWait();
        }
    }

    /** The load's result, once closed. */
    WorkloadResult result() {
        return result;
    }

    @Override
    public void close() throws InterruptedException {
        try {
            run.stop();
            result = run.await(t);
        } finally {
            guest.close();
        }
    }
}
