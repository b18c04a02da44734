package io.vblk.tools.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import io.vblk.drivers.rbd.CephCluster;
import io.vblk.drivers.rbd.CephClusterFixture;
import io.vblk.guest.GuestBlkDriver;
import io.vblk.guest.Workload;
import io.vblk.guest.WorkloadResult;
import io.vblk.guest.WorkloadRun;
import io.vblk.guest.vhost.VhostUserTransport;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Any thread (test code). QMP {@code blockdev-add driver=rbd} on a real single-node cluster
 * ({@link CephCluster}): the node opens, an export over it serves a verifying guest workload,
 * {@code block_resize} reaches the image, and a missing image is a QMP error naming ENOENT while
 * the daemon keeps serving.
 */
@Tag("real")
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class QmpRbdTest extends CephClusterFixture {
    private static final Duration T = Duration.ofSeconds(60);
    @Test
    void blockdevAddOpensAnRbdImageThatServesAGuestAndResizes() throws Exception {
        cluster.rbd("create", "--size", "32M", CephCluster.POOL + "/qmp0");
        Path m0 = dir.resolve("m0.sock");
        try (VblkWithMonitor v = new VblkWithMonitor(List.of(), List.of("iothread,id=io0"), List.of(), m0);
             QmpClient q = QmpClient.connect(m0).negotiate()) {
            JsonNode missing = q.raw("{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"rbd\", \"node-name\": \"x\","
                    + " \"pool\": \"rbd\", \"image\": \"nope\", \"conf\": \"" + cluster.conf() + "\"}}");
            assertThat(missing.path("error").path("desc").asText()).contains("ENOENT").contains("nope");
            assertThat(q.raw("{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"rbd\", \"node-name\": \"r0\","
                    + " \"pool\": \"rbd\", \"image\": \"qmp0\", \"conf\": \"" + cluster.conf() + "\"}}").has("return")).isTrue();
            JsonNode nodes = q.raw("{\"execute\": \"query-named-block-nodes\"}").get("return");
            assertThat(nodes.toString()).contains("\"drv\":\"rbd\"").contains("rbd:rbd/qmp0");
            String e0 = dir.resolve("e0.sock").toString();
            assertThat(q.raw("{\"execute\": \"block-export-add\", \"arguments\": {\"type\": \"vhost-user-blk\", \"id\": \"e0\","
                    + " \"node-name\": \"r0\", \"iothread\": \"io0\", \"addr\": {\"type\": \"unix\", \"path\": \"" + e0 + "\"},"
                    + " \"writable\": true}}").has("return")).isTrue();
            try (VhostUserTransport t = VhostUserTransport.connect(e0, T);
                 GuestBlkDriver g = GuestBlkDriver.attach(t, GuestBlkDriver.Options.defaults())) {
                WorkloadResult r = WorkloadRun.start(g, Workload.of(Workload.Pattern.RANDRW).withRequests(2000)
                        .withQueueDepth(16).withVerify(true)).await(T);
                assertThat(r.error()).isNull();
            }
            assertThat(q.raw("{\"execute\": \"block_resize\", \"arguments\": {\"node-name\": \"r0\", \"size\": 67108864}}")
                    .has("return")).isTrue();
            assertThat(cluster.rbd("info", "--format", "json", CephCluster.POOL + "/qmp0")).contains("\"size\":67108864");
        }
    }

    /**
     * QMP {@code object-add qom-type=secret} then {@code blockdev-add driver=rbd,key-secret=ID}
     * with a conf that names no keyring: the node opens with the key from the secret; an unknown
     * secret id is a QMP error naming it; {@code object-del} removes the secret.
     */
    @Test
    void blockdevAddTakesTheCephxKeyFromASecretObject() throws Exception {
        cluster.rbd("create", "--size", "16M", CephCluster.POOL + "/qmp-key");
        Path conf = dir.resolve("no-keyring.conf");
        java.nio.file.Files.writeString(conf, java.nio.file.Files.readString(cluster.conf()).lines()
                .filter(l -> !l.startsWith("keyring")).collect(java.util.stream.Collectors.joining("\n", "", "\n")));
        String add = "{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"rbd\", \"node-name\": \"%s\","
                + " \"pool\": \"rbd\", \"image\": \"qmp-key\", \"conf\": \"" + conf + "\"%s}}";
        Path m0 = dir.resolve("m1.sock");
        try (VblkWithMonitor v = new VblkWithMonitor(List.of(), List.of(), List.of(), m0);
             QmpClient q = QmpClient.connect(m0).negotiate()) {
            JsonNode unknown = q.raw(String.format(add, "k0", ", \"key-secret\": \"sec0\""));
            assertThat(unknown.path("error").path("desc").asText()).isEqualTo("No secret with id 'sec0'");
            JsonNode noKey = q.raw(String.format(add, "k0", ""));
            assertThat(noKey.path("error").path("desc").asText()).contains("rbd/qmp-key").contains("connecting");
            assertThat(q.raw("{\"execute\": \"object-add\", \"arguments\": {\"qom-type\": \"secret\", \"id\": \"sec0\","
                    + " \"data\": \"" + cluster.adminKey() + "\", \"format\": \"base64\"}}").has("return")).isTrue();
            JsonNode bad = q.raw("{\"execute\": \"object-add\", \"arguments\": {\"qom-type\": \"secret\", \"id\": \"sec1\","
                    + " \"data\": \"x\", \"format\": \"hex\"}}");
            assertThat(bad.path("error").path("desc").asText()).contains("format=hex");
            assertThat(q.raw(String.format(add, "k0", ", \"key-secret\": \"sec0\"")).has("return")).isTrue();
            assertThat(q.raw("{\"execute\": \"query-named-block-nodes\"}").toString()).contains("rbd:rbd/qmp-key");
            assertThat(q.raw("{\"execute\": \"object-del\", \"arguments\": {\"id\": \"sec0\"}}").has("return")).isTrue();
            JsonNode gone = q.raw(String.format(add, "k1", ", \"key-secret\": \"sec0\""));
            assertThat(gone.path("error").path("desc").asText()).isEqualTo("No secret with id 'sec0'");
        }
    }
}
