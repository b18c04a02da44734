package io.vblk.virtio.blk;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.engine.AioMode;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.file.FileDriver;
import io.vblk.drivers.job.BackupJob;
import io.vblk.drivers.job.Job;
import io.vblk.drivers.job.JobListener;
import io.vblk.drivers.job.Jobs;
import io.vblk.drivers.job.OnError;
import io.vblk.drivers.node.BlockNode;
import io.vblk.drivers.qcow2.QemuImg;
import io.vblk.guest.GuestBlkDriver;
import io.vblk.guest.InProcessBlk;
import io.vblk.guest.Workload;
import io.vblk.guest.WorkloadResult;
import io.vblk.guest.WorkloadRun;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Any thread (test code): the device on two IoThreads, the backup on its main loop, the emulated
 * guest on its vCPU threads.
 *
 * <p>blockdev-backup sync=full under a guest writing verified data at queue depth 32 per queue:
 * the backup image is byte-identical to the disk at the job's start, as {@code qemu-img compare}
 * says. The reference is a copy of the source file taken ({@code cp --reflink=never}) while the
 * node is drained, just before the job starts inside that same drained section. The background
 * copy is paused until the guest has written 1000 times, so the copy-before-write filter, not the
 * loop, saves what the guest overwrites, whatever the machine's load.
 */
class BackupGuestTest {
    private static final long SIZE = 8L << 20;
    private static final int BLOCK = 4096;
    private static final Duration T = Duration.ofSeconds(60);

    @TempDir
    Path dir;

    @Test
    @Timeout(300)
    void theBackupIsTheDiskAtTheJobsStartWhileAVerifyingGuestWrites() throws Exception {
        Path srcPath = dir.resolve("src.img");
        Path dstPath = dir.resolve("dst.img");
        Path refPath = dir.resolve("ref.img");
        byte[] initial = new byte[(int) SIZE];
        new Random(5).nextBytes(initial);
        Files.write(srcPath, initial);
        Files.write(dstPath, new byte[(int) SIZE]);
        BlockDriver src = FileDriver.open(srcPath.toString(), AioMode.THREADS, FileDriver.Cache.WRITEBACK, false);
        BlockDriver dst = FileDriver.open(dstPath.toString(), AioMode.THREADS, FileDriver.Cache.WRITEBACK, false);
        BlkDeviceConfig cfg = new BlkDeviceConfig().numQueues(2).queueSize(256);
        WorkloadResult result = null;
        WorkloadRun run = null;
        BackupJob job;
        long kept;
        try (InProcessBlk dev = InProcessBlk.start(src, cfg, 2, AioOptions.DEFAULT)) {
            AioContext main = dev.control().ctx();
            BlockNode source = dev.device().node();
            CompletableFuture<String> ended = new CompletableFuture<>();
            BlockNode target = AioContext.await(main.callOn(() -> new BlockNode("target", dst, main)), T);
            GuestBlkDriver guest = GuestBlkDriver.attach(dev.transport(), GuestBlkDriver.Options.defaults().withQueues(2)
                    .withSlots(32).withMaxDataBytes(BLOCK));
            Throwable failed = null;
            try {
                run = WorkloadRun.start(guest, Workload.of(Workload.Pattern.RANDWRITE).withQueueDepth(32)
                        .withBlockSize(BLOCK).withVerify(true).withSeed(5).withDuration(T.toNanos())
                        .withStallNanos(Duration.ofSeconds(10).toNanos()));
                awaitProgress(run, 500, "before the backup");
                // The point in time: the node drained (no guest write in flight, none taken), the
                // reference copied, the job started inside the same section.
                AioContext.await(AioContext.await(main.callOn(source::drainedBegin), T), T);
                copy(srcPath, refPath);
                job = AioContext.await(main.callOn(() -> {
                    Jobs jobs = new Jobs(main);
                    jobs.addListener(new JobListener() {
                        @Override
                        public void completed(Job j, String error) {
                            ended.complete(error == null ? "completed" : error);
                        }

                        @Override
                        public void cancelled(Job j) {
                            ended.complete("cancelled");
                        }
                    });
                    BackupJob b = jobs.start(new BackupJob(jobs, "b0", source, target, 0, BackupJob.DEFAULT_CLUSTER,
                            OnError.REPORT, OnError.REPORT, true, true));
                    b.userPause();
                    source.drainedEnd();
                    return b;
                }), T);
                assertThat(AioContext.await(main.callOn(job::filterOn), T)).as("the filter went in inside the drain").isTrue();
                awaitProgress(run, run.completed() + 1000, "during the paused backup");
                AioContext.await(main.callOn(() -> {
                    job.userResume();
                    return null;
                }), T);
                try {
                    assertThat(AioContext.await(ended, T)).isEqualTo("completed");
                } catch (java.util.concurrent.CompletionException e) {
                    throw new AssertionError("backup not ended within " + T + ": "
                            + AioContext.await(main.callOn(job::toString), T), e);
                }
                kept = AioContext.await(main.callOn(job::keptWrites), T);
                awaitProgress(run, run.completed() + 500, "after the backup");
            } catch (Throwable e) {
                failed = e;
                throw e;
            } finally {
                if (run != null) {
                    run.stop();
                    result = run.await(T);
                }
                try {
                    guest.close();
                } catch (RuntimeException e) {
                    if (failed == null) {
                        throw e;
                    }
                    failed.addSuppressed(e);
                }
                AioContext.await(main.callOn(() -> {
                    target.close();
                    return null;
                }), T);
            }
        }
        assertThat(result.error()).as("the guest's verify").isNull();
        assertThat(result.total().verifyFailures).isZero();
        assertThat(kept).as("guest writes the filter held for a copy-before-write").isPositive();
        QemuImg.Result same = QemuImg.img("compare", "-f", "raw", "-F", "raw", refPath.toString(), dstPath.toString());
        assertThat(same.exit()).as("qemu-img compare ref backup: %s", same.out()).isZero();
        QemuImg.Result moved = QemuImg.img("compare", "-f", "raw", "-F", "raw", refPath.toString(), srcPath.toString());
        assertThat(moved.exit()).as("the guest changed the source after the start: %s", moved.out()).isEqualTo(1);
        System.out.printf("backup under a QD32 verifying guest: %d guest writes waited for a copy-before-write, "
                + "%d completed in all; qemu-img compare: %s%n", kept, result.total().completed, same.out().strip());
    }

    private static void copy(Path from, Path to) throws Exception {
        Process p = new ProcessBuilder("cp", "--reflink=never", from.toString(), to.toString()).redirectErrorStream(true)
                .start();
        p.getOutputStream().close();
        String out = new String(p.getInputStream().readAllBytes());
        assertThat(p.waitFor(60, TimeUnit.SECONDS)).as("cp ended").isTrue();
        assertThat(p.exitValue()).as("cp: %s", out).isZero();
    }

    private static void awaitProgress(WorkloadRun run, long n, String when) throws InterruptedException {
        long deadline = System.nanoTime() + T.toNanos();
        while (run.completed() < n) {
            if (run.isDone()) {
                throw new AssertionError("guest stopped early (" + when + "): " + run.await(T).error());
            }
            assertThat(System.nanoTime()).as("guest reached %d completions", n).isLessThan(deadline);
            Thread.onSpinWait();
        }
    }
}
