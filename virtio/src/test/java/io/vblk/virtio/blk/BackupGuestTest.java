package io.vblk.virtio.blk;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.engine.AioMode;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.file.FileDriver;
import io.vblk.drivers.job.BackupJob;
import io.vblk.drivers.job.JobEnd;
import io.vblk.drivers.job.Jobs;
import io.vblk.drivers.job.OnError;
import io.vblk.drivers.node.BlockNode;
import io.vblk.drivers.qcow2.QemuImg;
import io.vblk.guest.InProcessBlk;
import io.vblk.guest.WorkloadResult;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
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
    private static final Duration T = Duration.ofSeconds(60);

    @TempDir
    Path dir;

    @Test
    @Timeout(300)
    void theBackupIsTheDiskAtTheJobsStartWhileAVerifyingGuestWrites() throws Exception {
        Path srcPath = dir.resolve("src.img");
        Path dstPath = dir.resolve("dst.img");
        Path refPath = dir.resolve("ref.img");
        VerifyingGuest.writeImages(srcPath, dstPath, 5, SIZE);
        BlockDriver src = FileDriver.open(srcPath.toString(), AioMode.THREADS, FileDriver.Cache.WRITEBACK, false);
        BlockDriver dst = FileDriver.open(dstPath.toString(), AioMode.THREADS, FileDriver.Cache.WRITEBACK, false);
        BlkDeviceConfig cfg = new BlkDeviceConfig().numQueues(2).queueSize(256);
        WorkloadResult result;
        BackupJob job;
        long kept;
        try (InProcessBlk dev = InProcessBlk.start(src, cfg, 2, AioOptions.DEFAULT)) {
            AioContext main = dev.control().ctx();
            BlockNode source = dev.device().node();
            JobEnd end = new JobEnd(null);
            BlockNode target = AioContext.await(main.callOn(() -> new BlockNode("target", dst, main)), T);
            VerifyingGuest run = VerifyingGuest.start(dev, 5, T);
            try (run) {
                run.awaitProgress(500, "before the backup");
                // The point in time: the node drained (no guest write in flight, none taken), the
                // reference copied, the job started inside the same section.
                AioContext.await(AioContext.await(main.callOn(source::drainedBegin), T), T);
                copy(srcPath, refPath);
                job = AioContext.await(main.callOn(() -> {
                    Jobs jobs = new Jobs(main);
                    jobs.addListener(end);
                    BackupJob b = jobs.start(new BackupJob(jobs, "b0", source, target, 0, BackupJob.DEFAULT_CLUSTER,
                            OnError.REPORT, OnError.REPORT, true, true));
                    b.userPause();
                    source.drainedEnd();
                    return b;
                }), T);
                assertThat(AioContext.await(main.callOn(job::filterOn), T)).as("the filter went in inside the drain").isTrue();
                run.awaitProgress(run.completed() + 1000, "during the paused backup");
                AioContext.await(main.callOn(() -> {
                    job.userResume();
                    return null;
                }), T);
                assertThat(VerifyingGuest.awaitJob(end.ended(), main, job, "ended", T)).isEqualTo("completed");
                kept = AioContext.await(main.callOn(job::keptWrites), T);
                run.awaitProgress(run.completed() + 500, "after the backup");
            } finally {
                AioContext.await(main.callOn(() -> {
                    target.close();
                    return null;
                }), T);
            }
            result = run.result();
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
}
