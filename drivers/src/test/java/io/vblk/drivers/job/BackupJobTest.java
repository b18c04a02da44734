package io.vblk.drivers.job;

import io.vblk.aio.AioContext;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.fault.FaultRule;
import io.vblk.drivers.job.MirrorJobTest.Writer;
import io.vblk.drivers.node.BlockNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.nio.file.Files;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Any thread (test code): the jobs on a main-loop IoThread, a writing parent on another IoThread.
 *
 * <p>The backup job on real files: the target is the source at the job's start while a parent
 * writes (every write to a chunk not yet copied waits for the copy-before-write), cancel and
 * errors leave the source as the parent wrote it, and the error policies. The background copy is
 * paused while the parent writes, so the filter — not the loop — copies what the parent touches,
 * whatever the machine's load.
 */
@Timeout(120)
class BackupJobTest extends FileJobsTest {
    BackupJobTest() {
        super(11);
    }

    private BackupJob backup(BlockNode s, BlockNode t, OnError onSource, OnError onTarget) {
        BackupJob job = on(() -> {
            listen();
            BackupJob b = jobs.start(new BackupJob(jobs, "b0", s, t, 0, 64 << 10, onSource, onTarget, true, true));
            b.userPause(); // the background copy waits: only the filter copies until the resume
            return b;
        });
        until("the filter is in (the point in time)", () -> on(job::filterOn) || ended.isDone());
        return job;
    }

    @Test
    void theTargetIsTheSourceAtTheStartWhileAParentWrites() throws Exception {
        BlockNode src = source();
        BlockNode dst = target();
        BackupJob job = backup(src, dst, OnError.REPORT, OnError.REPORT);
        Writer w = writer(src);
        w.awaitAcks(300); // every one of these overwrote a chunk only after the filter copied it
        assertThat(on(job::status)).isEqualTo(JobStatus.PAUSED);
        assertThat(on(job::keptWrites)).as("writes the filter kept for a copy").isPositive();
        run(job::userResume);
        assertThat(AioContext.await(ended, T)).isEqualTo("completed");
        assertThat(events()).containsSubsequence("created", "running", "paused", "running", "waiting", "pending",
                "concluded", "null");
        stopAfter(w, 100, src); // the filter is out: the parent goes on
        assertThat(on(src::dirtyBitmapCount)).isZero();
        assertThat(Files.readAllBytes(dir.resolve("dst.img"))).as("the target: the source at the job's start")
                .isEqualTo(original);
        assertSourceIsTheWriters(w);
    }

    @Test
    void cancelLeavesTheSourceAsTheParentWroteIt() throws Exception {
        BlockNode src = source();
        BlockNode dst = target();
        BackupJob job = backup(src, dst, OnError.REPORT, OnError.REPORT);
        Writer w = writer(src);
        w.awaitAcks(200);
        run(() -> job.userCancel(false));
        assertThat(AioContext.await(ended, T)).isEqualTo("cancelled");
        assertThat(events()).containsSubsequence("running", "aborting", "concluded", "null");
        stopAfter(w, 200, src);
        assertSourceIsTheWriters(w);
    }

    @Test
    void aTargetErrorReportedEndsTheJobAndLeavesTheSource() throws Exception {
        FaultRule eio = FaultRule.error(1 << BlockIo.WRITE, 2 << 20, (2 << 20) + 1, 5);
        BlockNode src = source();
        BlockNode dst = target(eio);
        BackupJob job = backup(src, dst, OnError.REPORT, OnError.REPORT);
        run(job::userResume);
        assertThat(AioContext.await(ended, T)).startsWith("completed: Target I/O error");
        assertThat(events()).contains("error write report").containsSubsequence("running", "aborting", "concluded");
        assertThat(Files.readAllBytes(dir.resolve("src.img"))).isEqualTo(original);
    }

    @Test
    void aSourceErrorStopsThenTheResumedJobCopiesItAll() throws Exception {
        FaultRule eio = new FaultRule(1 << BlockIo.READ, 1 << 20, (1 << 20) + 1, 0, 0, 1, 1, FaultRule.Action.ERROR, 5, 0, 0);
        BlockNode src = source(eio);
        BlockNode dst = target();
        BackupJob job = backup(src, dst, OnError.STOP, OnError.REPORT);
        run(job::userResume);
        until("stopped on the read error", () -> on(job::paused) || ended.isDone());
        assertThat(events()).contains("error read stop");
        run(job::userResume); // the rule fired once: the chunk copies now
        assertThat(AioContext.await(ended, T)).isEqualTo("completed");
        assertThat(Files.readAllBytes(dir.resolve("dst.img"))).isEqualTo(original);
    }

    @Test
    void aFailedCopyBeforeWriteBreaksTheBackupNotTheWrite() throws Exception {
        BlockNode src = source();
        BlockNode dst = everyWriteFails();
        BackupJob job = backup(src, dst, OnError.IGNORE, OnError.IGNORE);
        Writer w = writer(src);
        w.awaitAcks(200); // the writes the filter kept went on, and the ones after
        assertThat(on(job::status)).as("a paused job ends on its resume").isEqualTo(JobStatus.PAUSED);
        run(job::userResume);
        assertThat(AioContext.await(ended, T)).isEqualTo("completed: " + BackupJob.BROKEN);
        stopAfter(w, 100, src);
        assertThat(on(job::keptWrites)).isPositive();
        assertSourceIsTheWriters(w);
    }

    @Test
    void aReportedTargetErrorWhilePausedEndsTheJobAtTheResume() throws Exception {
        BlockNode src = source();
        BlockNode dst = everyWriteFails();
        BackupJob job = backup(src, dst, OnError.REPORT, OnError.REPORT);
        Writer w = writer(src);
        w.awaitAcks(200); // the filter's copy failed: the writes went on
        assertThat(events()).contains("error write report");
        assertThat(on(job::status)).as("a paused job ends on its resume").isEqualTo(JobStatus.PAUSED);
        run(job::userResume);
        assertThat(AioContext.await(ended, T)).startsWith("completed: Target I/O error");
        stopAfter(w, 0, src);
        assertSourceIsTheWriters(w);
    }

    /** The target node, on a file whose every write fails with EIO. */
    private BlockNode everyWriteFails() throws Exception {
        return target(FaultRule.error(1 << BlockIo.WRITE, 0, SIZE, 5));
    }

    /** Every block of the source holds the parent's last acknowledged write, or the original data. */
    private void assertSourceIsTheWriters(Writer w) throws Exception {
        byte[] s = Files.readAllBytes(dir.resolve("src.img"));
        for (int b = 0; b < SIZE / BLOCK; b++) {
            assertBlock(s, b, w.last[b], "source");
        }
    }
}
