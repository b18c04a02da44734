package io.vblk.tools.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import io.vblk.guest.GuestBlkDriver;
import io.vblk.guest.WorkloadResult;
import io.vblk.guest.WorkloadRun;
import io.vblk.guest.vhost.VhostUserTransport;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Any thread (test code).
 *
 * <p>The block job commands and events over vblk's real monitor socket, with a guest writing
 * verified data over vhost-user throughout: blockdev-mirror's argument checks, query-jobs and
 * query-block-jobs in QEMU's shapes, the verb table's refusals, block-job-set-speed, the
 * BLOCK_JOB_READY / BLOCK_JOB_COMPLETED data, JOB_STATUS_CHANGE in QEMU's order, the export
 * serving the target after job-complete (query-block-exports, blockdev-del of the source) and the
 * guest's final verify pass reading every acknowledged write back from the target.
 */
@Timeout(180)
class QmpJobsTest extends MonitorJobFixture {
    QmpJobsTest() {
        super(5);
    }

    @Test
    void mirrorAndPivotOverTheMonitorWhileAGuestWrites() throws Exception {
        try (QmpClient q = QmpClient.connect(m0).negotiate();
             VhostUserTransport t = VhostUserTransport.connect(dir.resolve("e0.sock").toString(), T);
             GuestBlkDriver g = GuestBlkDriver.attach(t, GuestBlkDriver.Options.defaults().withMaxDataBytes(4096))) {
            WorkloadRun load = verifiedWrites(g, T);
            assertThat(q.raw(addFile("dst", dir.resolve("dst.img"))).has("return")).isTrue();

            assertThat(desc(q.raw("{\"execute\": \"blockdev-mirror\", \"arguments\": {\"device\": \"src\", \"target\": \"dst\"}}")))
                    .isEqualTo("Parameter 'sync' is missing");
            assertThat(desc(q.raw("{\"execute\": \"blockdev-mirror\", \"arguments\": {\"device\": \"src\", \"target\": \"nope\","
                    + " \"sync\": \"full\"}}"))).isEqualTo("Cannot find device='nope' nor node-name='nope'");
            assertThat(desc(q.raw("{\"execute\": \"blockdev-mirror\", \"arguments\": {\"device\": \"src\", \"target\": \"dst\","
                    + " \"sync\": \"full\", \"granularity\": 1000}}"))).isEqualTo("Granularity must be power of 2");
            assertThat(desc(q.raw("{\"execute\": \"blockdev-mirror\", \"arguments\": {\"device\": \"src\", \"target\": \"dst\","
                    + " \"sync\": \"full\", \"on-source-error\": \"frob\"}}")))
                    .isEqualTo("Parameter 'on-source-error' does not accept value 'frob'");
            assertThat(desc(q.raw("{\"execute\": \"job-complete\", \"arguments\": {\"id\": \"m0\"}}"))).isEqualTo("Job not found");
            JsonNode noJob = q.raw("{\"execute\": \"block-job-cancel\", \"arguments\": {\"device\": \"m0\"}}");
            assertThat(noJob.path("error").path("class").asText()).isEqualTo("DeviceNotActive");
            assertThat(desc(noJob)).isEqualTo("Block job 'm0' not found");

            // Slow enough to look at while it runs: one 64 KiB chunk per 100 ms slice.
            assertThat(q.raw("{\"execute\": \"blockdev-mirror\", \"arguments\": {\"job-id\": \"m0\", \"device\": \"src\","
                    + " \"target\": \"dst\", \"sync\": \"full\", \"speed\": 1}}").has("return")).isTrue();
            assertThat(desc(q.raw("{\"execute\": \"blockdev-mirror\", \"arguments\": {\"job-id\": \"m1\", \"device\": \"src\","
                    + " \"target\": \"dst\", \"sync\": \"full\"}}"))).isEqualTo("Node 'src' is busy: block device is in use by block job: mirror");
            assertThat(desc(q.raw("{\"execute\": \"job-complete\", \"arguments\": {\"id\": \"m0\"}}")))
                    .isEqualTo("Job 'm0' in state 'running' cannot accept command verb 'complete'");
            assertThat(desc(q.raw("{\"execute\": \"blockdev-del\", \"arguments\": {\"node-name\": \"dst\"}}")))
                    .isEqualTo("Node 'dst' is busy: block device is in use by block job");
            JsonNode job = q.execute("query-jobs", null).get("return").get(0);
            assertThat(job.get("id").asText()).isEqualTo("m0");
            assertThat(job.get("type").asText()).isEqualTo("mirror");
            assertThat(job.get("status").asText()).isEqualTo("running");
            assertThat(job.get("total-progress").asLong()).isGreaterThanOrEqualTo(SIZE);
            assertThat(job.get("current-progress").asLong()).isLessThan(SIZE);
            JsonNode bj = q.execute("query-block-jobs", null).get("return").get(0);
            assertThat(bj.get("device").asText()).isEqualTo("m0");
            assertThat(bj.get("speed").asLong()).isEqualTo(1);
            assertThat(bj.get("ready").asBoolean()).isFalse();
            assertThat(bj.get("io-status").asText()).isEqualTo("ok");
            assertThat(bj.get("auto-finalize").asBoolean()).isTrue();
            for (String f : List.of("len", "offset", "busy", "paused", "status", "type", "auto-dismiss")) {
                assertThat(bj.has(f)).as("query-block-jobs field %s", f).isTrue();
            }
            assertThat(q.raw("{\"execute\": \"job-pause\", \"arguments\": {\"id\": \"m0\"}}").has("return")).isTrue();
            assertThat(desc(q.raw("{\"execute\": \"job-pause\", \"arguments\": {\"id\": \"m0\"}}"))).isEqualTo("Job is already paused");
            assertThat(q.execute("query-jobs", null).get("return").get(0).get("status").asText()).isEqualTo("paused");
            assertThat(q.raw("{\"execute\": \"job-resume\", \"arguments\": {\"id\": \"m0\"}}").has("return")).isTrue();
            assertThat(q.raw("{\"execute\": \"block-job-set-speed\", \"arguments\": {\"device\": \"m0\", \"speed\": 0}}")
                    .has("return")).isTrue();

            JsonNode ready = q.awaitEvent("BLOCK_JOB_READY").get("data");
            assertThat(ready.get("device").asText()).isEqualTo("m0");
            assertThat(ready.get("type").asText()).isEqualTo("mirror");
            // Ready: the first pass is done and what was left fitted in one window of copies (16 x 64 KiB)
            // when the job decided; the event's figures are read a moment later, and the guest's writes
            // completing on its IoThread meanwhile add to them, so only "not the whole disk" is certain.
            assertThat(ready.get("offset").asLong()).isPositive();
            assertThat(ready.get("len").asLong() - ready.get("offset").asLong()).isBetween(0L, SIZE - 1);
            assertThat(ready.get("speed").asLong()).isZero();
            long atReady = load.completed();
            while (load.completed() < atReady + 300) {
                assertThat(load.isDone()).as("guest stopped early").isFalse();
                Thread.onSpinWait();
            }
            assertThat(q.raw("{\"execute\": \"job-complete\", \"arguments\": {\"id\": \"m0\"}}").has("return")).isTrue();
            JsonNode done = q.awaitEvent("BLOCK_JOB_COMPLETED").get("data");
            assertThat(done.has("error")).as(done.toString()).isFalse();
            assertThat(done.get("device").asText()).isEqualTo("m0");
            List<String> statuses = statusesAfterDismiss(q);
            assertThat(statuses).containsExactly("created", "running", "paused", "running", "ready", "waiting", "pending",
                    "concluded", "null");
            assertThat(q.execute("query-block-exports", null).get("return").get(0).get("node-name").asText()).isEqualTo("dst");

            long atPivot = load.completed();
            while (load.completed() < atPivot + 300) {
                assertThat(load.isDone()).as("guest stopped after the pivot").isFalse();
                Thread.onSpinWait();
            }
            load.stop();
            WorkloadResult r = load.await(T);
            assertThat(r.error()).as("verify: every acknowledged write read back from the target").isNull();
            assertThat(r.total().verifyFailures).isZero();
            assertThat(q.raw("{\"execute\": \"blockdev-del\", \"arguments\": {\"node-name\": \"src\"}}").has("return"))
                    .as("the source is free after the pivot").isTrue();
        }
    }

    @Test
    void cancelAfterReadyLeavesTheExportOnTheSource() throws Exception {
        try (QmpClient q = QmpClient.connect(m0).negotiate()) {
            q.raw(addFile("dst", dir.resolve("dst.img")));
            assertThat(q.raw("{\"execute\": \"blockdev-mirror\", \"arguments\": {\"job-id\": \"m0\", \"device\": \"src\","
                    + " \"target\": \"dst\", \"sync\": \"full\", \"auto-dismiss\": false}}").has("return")).isTrue();
            q.awaitEvent("BLOCK_JOB_READY");
            assertThat(q.raw("{\"execute\": \"job-cancel\", \"arguments\": {\"id\": \"m0\"}}").has("return")).isTrue();
            JsonNode c = q.awaitEvent("BLOCK_JOB_CANCELLED").get("data");
            assertThat(c.get("device").asText()).isEqualTo("m0");
            JsonNode job = awaitConcluded(q);
            assertThat(job.get("error").asText()).isEqualTo("Operation canceled");
            assertThat(q.raw("{\"execute\": \"job-dismiss\", \"arguments\": {\"id\": \"m0\"}}").has("return")).isTrue();
            assertThat(q.execute("query-jobs", null).get("return").size()).isZero();
            assertThat(q.execute("query-block-exports", null).get("return").get(0).get("node-name").asText()).isEqualTo("src");
            assertThat(q.raw("{\"execute\": \"blockdev-del\", \"arguments\": {\"node-name\": \"dst\"}}").has("return")).isTrue();
        }
    }
}
