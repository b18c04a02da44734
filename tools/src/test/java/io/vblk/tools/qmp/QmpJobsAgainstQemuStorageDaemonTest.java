package io.vblk.tools.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import io.vblk.virtio.vhost.QemuStorageDaemon;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Any thread (test code).
 *
 * <p>The same block-job session against qemu-storage-daemon, the reference server, and against
 * vblk: blockdev-mirror to ready, query-jobs and query-block-jobs while ready, job-complete, the
 * concluded job in query-jobs, job-dismiss; then blockdev-backup to its end; and the verbs' errors.
 * Every reply's and event's shape ({@link QmpShapes}: keys, JSON types, error classes) and the
 * order of JOB_STATUS_CHANGE statuses must match.
 */
@Tag("real")
@Timeout(180)
class QmpJobsAgainstQemuStorageDaemonTest {
    private static final long SIZE = 4L << 20;

    @TempDir
    Path dir;

    @Test
    void jobRepliesAndEventsHaveTheReferenceServersShape() throws Exception {
        List<Path> dirs = ReferenceServer.directories(dir, SIZE, "src.img", "dst.img", "bak.img");
        Path qd = dirs.get(0);
        Path vd = dirs.get(1);
        String src = "driver=file,node-name=src,filename=";
        List<String> reference;
        try (QemuStorageDaemon qsd = ReferenceServer.start(qd, "--blockdev", src + qd.resolve("src.img"))) {
            reference = session(qd.resolve("qmp.sock"), qd);
        }
        List<String> ours;
        try (VblkWithMonitor v = new VblkWithMonitor(List.of(src + vd.resolve("src.img")), List.of(), List.of(),
                vd.resolve("qmp.sock"))) {
            ours = session(vd.resolve("qmp.sock"), vd);
        }
        // query-block-jobs' "actively-synced" (BlockJobInfoMirror) came with QEMU 8.2: an older
        // reference server lacks it, vblk answers as the newer one.
        boolean before82 = reference.getFirst().matches("version (7|8\\.[01])\\..*");
        List<String> diffs = new ArrayList<>();
        for (int i = 1; i < Math.max(ours.size(), reference.size()); i++) {
            String o = i < ours.size() ? ours.get(i) : "(none)";
            String r = i < reference.size() ? reference.get(i) : "(none)";
            if (before82) {
                o = o.replace("actively-synced:bool,", "");
            }
            if (!o.equals(r)) {
                diffs.add("step " + i + "\n  vblk: " + o + "\n  qsd:  " + r);
            }
        }
        assertThat(diffs).as("steps whose shape differs from %s", reference.getFirst()).isEmpty();
    }

    /** The session; one line per reply or event: what was sent or awaited, and the shape. */
    private static List<String> session(Path socket, Path dir) throws IOException {
        List<String> shapes = new ArrayList<>();
        try (QmpClient c = QmpClient.connect(socket).negotiate()) {
            JsonNode v = c.greeting().path("QMP").path("version").path("qemu");
            shapes.add("version " + v.path("major").asInt() + "." + v.path("minor").asInt() + "." + v.path("micro").asInt());
            for (String n : List.of("dst", "bak")) {
                step(c, shapes, "{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"file\", \"node-name\": \"" + n
                        + "\", \"filename\": \"" + dir.resolve(n + ".img") + "\"}}");
            }
            step(c, shapes, "{\"execute\": \"job-complete\", \"arguments\": {\"id\": \"m0\"}}");
            step(c, shapes, "{\"execute\": \"block-job-cancel\", \"arguments\": {\"device\": \"m0\"}}");
            step(c, shapes, "{\"execute\": \"blockdev-mirror\", \"arguments\": {\"device\": \"src\", \"target\": \"dst\"}}");
            step(c, shapes, "{\"execute\": \"blockdev-backup\", \"arguments\": {\"device\": \"src\", \"target\": \"bak\","
                    + " \"sync\": \"frob\"}}");
            step(c, shapes, "{\"execute\": \"blockdev-mirror\", \"arguments\": {\"job-id\": \"m0\", \"device\": \"src\","
                    + " \"target\": \"dst\", \"sync\": \"full\", \"auto-dismiss\": false}}");
            event(c, shapes, "BLOCK_JOB_READY");
            shapes.add("query-jobs => " + QmpShapes.shape(c.execute("query-jobs", null)));
            shapes.add("query-block-jobs => " + QmpShapes.shape(c.execute("query-block-jobs", null)));
            step(c, shapes, "{\"execute\": \"job-dismiss\", \"arguments\": {\"id\": \"m0\"}}");
            step(c, shapes, "{\"execute\": \"job-complete\", \"arguments\": {\"id\": \"m0\"}}");
            event(c, shapes, "BLOCK_JOB_COMPLETED");
            shapes.add("query-jobs (concluded) => " + QmpShapes.shape(c.execute("query-jobs", null)));
            step(c, shapes, "{\"execute\": \"job-dismiss\", \"arguments\": {\"id\": \"m0\"}}");
            shapes.add("statuses m0 " + statuses(c, "m0"));

            step(c, shapes, "{\"execute\": \"blockdev-backup\", \"arguments\": {\"job-id\": \"b0\", \"device\": \"dst\","
                    + " \"target\": \"bak\", \"sync\": \"full\"}}");
            event(c, shapes, "BLOCK_JOB_COMPLETED");
            JsonNode q;
            do {
                q = c.execute("query-jobs", null); // auto-dismiss follows the event
            } while (!q.get("return").isEmpty());
            shapes.add("statuses b0 " + statuses(c, "b0"));
        }
        return shapes;
    }

    private static void step(QmpClient c, List<String> shapes, String line) throws IOException {
        shapes.add(line.replaceAll("\"filename\": \"[^\"]*\"", "\"filename\": ...") + " => " + QmpShapes.shape(c.raw(line)));
    }

    private static void event(QmpClient c, List<String> shapes, String name) throws IOException {
        shapes.add("event " + name + " => " + QmpShapes.shape(c.awaitEvent(name)));
    }

    /** The JOB_STATUS_CHANGE statuses of {@code id} received so far (the other events are dropped). */
    private static List<String> statuses(QmpClient c, String id) {
        List<String> l = new ArrayList<>();
        for (JsonNode e : c.takeEvents()) {
            if (e.path("event").asText().equals("JOB_STATUS_CHANGE") && e.path("data").path("id").asText().equals(id)) {
                l.add(e.get("data").get("status").asText());
            }
        }
        return l;
    }
}
