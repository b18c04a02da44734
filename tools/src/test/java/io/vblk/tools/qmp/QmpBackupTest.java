package io.vblk.tools.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import io.vblk.drivers.qcow2.QemuImg;
import io.vblk.guest.GuestBlkDriver;
import io.vblk.guest.WorkloadResult;
import io.vblk.guest.WorkloadRun;
import io.vblk.guest.vhost.VhostUserTransport;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.nio.file.Files;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Any thread (test code).
 *
 * <p>blockdev-backup over vblk's real monitor socket: QEMU's argument names and checks, the job
 * in query-jobs / query-block-jobs, the verbs a backup refuses, JOB_STATUS_CHANGE in QEMU's order
 * and BLOCK_JOB_COMPLETED; a guest writing verified data over vhost-user at QD32 while the backup
 * runs, and {@code qemu-img compare} of the backup with the disk as it was at the command. The
 * backup is paused (job-pause) until the guest has written 1000 times, so the copy-before-write
 * filter saves what the guest overwrites whatever the load.
 */
@Timeout(180)
class QmpBackupTest extends MonitorJobFixture {
    QmpBackupTest() {
        super(9);
    }

    @BeforeEach
    void reference() throws Exception {
        Files.write(dir.resolve("ref.img"), data); // nothing writes the source before the backup starts
    }

    private static String backup(String args) {
        return "{\"execute\": \"blockdev-backup\", \"arguments\": {" + args + "}}";
    }

    @Test
    void backupOverTheMonitorWhileAGuestWritesIsTheDiskAtTheCommand() throws Exception {
        try (QmpClient q = QmpClient.connect(m0).negotiate()) {
            assertThat(q.raw(addFile("dst", dir.resolve("dst.img"))).has("return")).isTrue();
            assertThat(desc(q.raw(backup("\"device\": \"src\", \"target\": \"dst\"")))).isEqualTo("Parameter 'sync' is missing");
            assertThat(desc(q.raw(backup("\"device\": \"src\", \"target\": \"dst\", \"sync\": \"frob\""))))
                    .isEqualTo("Parameter 'sync' does not accept value 'frob'");
            assertThat(desc(q.raw(backup("\"device\": \"src\", \"target\": \"dst\", \"sync\": \"top\""))))
                    .isEqualTo("Parameter 'sync' value 'top' is not supported by vblk (only 'full')");
            assertThat(desc(q.raw(backup("\"device\": \"src\", \"target\": \"nope\", \"sync\": \"full\""))))
                    .isEqualTo("Cannot find device='nope' nor node-name='nope'");
            assertThat(desc(q.raw(backup("\"device\": \"src\", \"target\": \"dst\", \"sync\": \"full\","
                    + " \"on-target-error\": \"frob\"")))).isEqualTo("Parameter 'on-target-error' does not accept value 'frob'");
            assertThat(desc(q.raw(backup("\"device\": \"src\", \"target\": \"dst\", \"sync\": \"full\", \"speed\": -1"))))
                    .isEqualTo("Invalid parameter 'speed'");

            assertThat(q.raw(backup("\"job-id\": \"b0\", \"device\": \"src\", \"target\": \"dst\", \"sync\": \"full\","
                    + " \"speed\": 1, \"on-source-error\": \"report\", \"on-target-error\": \"report\","
                    + " \"auto-finalize\": true, \"auto-dismiss\": true")).has("return")).isTrue();
            awaitStatus(q, "running"); // paused while the start's drained section holds
            assertThat(desc(q.raw(backup("\"job-id\": \"b1\", \"device\": \"src\", \"target\": \"dst\", \"sync\": \"full\""))))
                    .isEqualTo("Node 'src' is busy: block device is in use by block job: backup");
            assertThat(desc(q.raw("{\"execute\": \"job-complete\", \"arguments\": {\"id\": \"b0\"}}")))
                    .isEqualTo("Job 'b0' in state 'running' cannot accept command verb 'complete'");
            JsonNode job = q.execute("query-jobs", null).get("return").get(0);
            assertThat(job.get("id").asText()).isEqualTo("b0");
            assertThat(job.get("type").asText()).isEqualTo("backup");
            assertThat(job.get("status").asText()).isEqualTo("running");
            assertThat(job.get("total-progress").asLong()).isEqualTo(SIZE);
            JsonNode bj = q.execute("query-block-jobs", null).get("return").get(0);
            assertThat(bj.get("type").asText()).isEqualTo("backup");
            assertThat(bj.get("ready").asBoolean()).isFalse();
            assertThat(bj.has("actively-synced")).as("a mirror's field only").isFalse();

            // Paused: only the filter copies while the guest writes (it may touch every chunk, and
            // the filter's copies ignore speed and pause, so a slow background copy could be left with nothing).
            assertThat(q.raw("{\"execute\": \"job-pause\", \"arguments\": {\"id\": \"b0\"}}").has("return")).isTrue();
            WorkloadResult r;
            try (VhostUserTransport t = VhostUserTransport.connect(dir.resolve("e0.sock").toString(), T);
                 GuestBlkDriver g = GuestBlkDriver.attach(t, GuestBlkDriver.Options.defaults().withMaxDataBytes(4096))) {
                WorkloadRun load = verifiedWrites(g, T);
                awaitProgress(load, 1000);
                JsonNode jobs = q.execute("query-jobs", null).get("return");
                assertThat(jobs.size()).as("the backup waits for its resume: %s", jobs).isOne();
                assertThat(jobs.get(0).get("status").asText()).isEqualTo("paused");
                assertThat(q.raw("{\"execute\": \"block-job-set-speed\", \"arguments\": {\"device\": \"b0\", \"speed\": 0}}")
                        .has("return")).isTrue();
                assertThat(q.raw("{\"execute\": \"job-resume\", \"arguments\": {\"id\": \"b0\"}}").has("return")).isTrue();
                JsonNode done = q.awaitEvent("BLOCK_JOB_COMPLETED").get("data");
                assertThat(done.has("error")).as(done.toString()).isFalse();
                assertThat(done.get("type").asText()).isEqualTo("backup");
                assertThat(done.get("device").asText()).isEqualTo("b0");
                assertThat(done.get("offset").asLong()).isEqualTo(SIZE);
                assertThat(done.get("len").asLong()).isEqualTo(SIZE);
                awaitProgress(load, load.completed() + 300); // the guest goes on once the filter is out
                load.stop();
                r = load.await(T);
            }
            assertThat(r.error()).as("the guest's verify").isNull();
            assertThat(r.total().verifyFailures).isZero();
            List<String> statuses = statusesAfterDismiss(q);
            // Paused while the start's drained section holds, as QEMU's backup (QmpJobsAgainstQemuStorageDaemonTest).
            assertThat(statuses).containsExactly("created", "running", "paused", "running", "paused", "running", "waiting",
                    "pending", "concluded", "null");
            assertThat(q.raw("{\"execute\": \"blockdev-del\", \"arguments\": {\"node-name\": \"dst\"}}").has("return")).isTrue();
        }
        QemuImg.Result same = QemuImg.img("compare", "-f", "raw", "-F", "raw", dir.resolve("ref.img").toString(),
                dir.resolve("dst.img").toString());
        assertThat(same.exit()).as("qemu-img compare ref backup: %s", same.out()).isZero();
        QemuImg.Result moved = QemuImg.img("compare", "-f", "raw", "-F", "raw", dir.resolve("ref.img").toString(),
                dir.resolve("src.img").toString());
        assertThat(moved.exit()).as("the guest changed the source: %s", moved.out()).isEqualTo(1);
    }

    @Test
    void cancelOverTheMonitorLeavesTheSource() throws Exception {
        try (QmpClient q = QmpClient.connect(m0).negotiate()) {
            q.raw(addFile("dst", dir.resolve("dst.img")));
            assertThat(q.raw(backup("\"job-id\": \"b0\", \"device\": \"src\", \"target\": \"dst\", \"sync\": \"full\","
                    + " \"speed\": 1, \"auto-dismiss\": false")).has("return")).isTrue();
            assertThat(q.raw("{\"execute\": \"job-cancel\", \"arguments\": {\"id\": \"b0\"}}").has("return")).isTrue();
            assertThat(q.awaitEvent("BLOCK_JOB_CANCELLED").get("data").get("type").asText()).isEqualTo("backup");
            JsonNode job = awaitConcluded(q);
            assertThat(job.get("error").asText()).isEqualTo("Operation canceled");
            assertThat(q.raw("{\"execute\": \"job-dismiss\", \"arguments\": {\"id\": \"b0\"}}").has("return")).isTrue();
            assertThat(q.raw("{\"execute\": \"blockdev-del\", \"arguments\": {\"node-name\": \"dst\"}}").has("return")).isTrue();
        }
        assertThat(QemuImg.img("compare", "-f", "raw", "-F", "raw", dir.resolve("ref.img").toString(),
                dir.resolve("src.img").toString()).exit()).as("the source is untouched").isZero();
    }

    private static void awaitStatus(QmpClient q, String status) throws Exception {
        long deadline = System.nanoTime() + T.toNanos();
        while (!q.execute("query-jobs", null).get("return").get(0).get("status").asText().equals(status)) {
            assertThat(System.nanoTime()).as("job %s", status).isLessThan(deadline);
            Thread.onSpinWait();
        }
    }

    private static void awaitProgress(WorkloadRun load, long n) throws Exception {
        long deadline = System.nanoTime() + T.toNanos();
        while (load.completed() < n) {
            assertThat(load.isDone()).as("guest stopped early: %s", load.isDone() ? load.await(T).error() : "").isFalse();
            assertThat(System.nanoTime()).as("guest reached %d completions", n).isLessThan(deadline);
            Thread.onSpinWait();
        }
    }
}
