package io.vblk.tools.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import io.vblk.guest.GuestBlkDriver;
import io.vblk.guest.Workload;
import io.vblk.guest.WorkloadRun;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * Any thread (test code).
 *
 * <p>The shared pieces of the block-job tests over vblk's real monitor socket: the source image
 * (random data) exported over vhost-user with an empty target image beside it, the guest's
 * verified write load, and the reading of replies and events. Each test has its own images and
 * daemon, with the monitor on {@link #m0}.
 */
abstract class MonitorJobFixture {
    static final Duration T = Duration.ofSeconds(60);
    static final long SIZE = 16L << 20;

    @TempDir
    Path dir;
    VblkWithMonitor vblk;
    Path m0;
    /** The source's data at the start. */
    byte[] data;
    private final long seed;

    /** @param seed the source's random data */
    MonitorJobFixture(long seed) {
        this.seed = seed;
    }

    @BeforeEach
    void start() throws Exception {
        data = writeImages(dir, seed, SIZE);
        m0 = dir.resolve("qmp0.sock");
        vblk = exportSource(dir, m0);
    }

    @AfterEach
    void stop() {
        vblk.close();
    }

    /**
     * Writes {@code src.img} ({@code size} random bytes from {@code seed}) and an empty
     * {@code dst.img} in {@code dir}.
     *
     * @return the source's data
     */
    static byte[] writeImages(Path dir, long seed, long size) throws Exception {
        byte[] data = new byte[(int) size];
        new Random(seed).nextBytes(data);
        Files.write(dir.resolve("src.img"), data);
        Files.write(dir.resolve("dst.img"), new byte[(int) size]);
        return data;
    }

    /** vblk serving {@code src.img} of {@code dir} as vhost-user-blk {@code e0.sock} on iothread {@code io0}. */
    static VblkWithMonitor exportSource(Path dir, Path monitor) throws Exception {
        return new VblkWithMonitor(List.of("driver=file,node-name=src,filename=" + dir.resolve("src.img")),
                List.of("iothread,id=io0"),
                List.of("type=vhost-user-blk,id=e0,node-name=src,addr.type=unix,addr.path=" + dir.resolve("e0.sock")
                        + ",writable=on,iothread=io0"), monitor);
    }

    /** A QMP error's description, or a text naming the reply when it is no error. */
    static String desc(JsonNode r) {
        return r.path("error").path("desc").asText("(no error: " + r + ")");
    }

    /** The blockdev-add of a file node {@code name} on {@code file}. */
    static String addFile(String name, Path file) {
        return "{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"file\", \"node-name\": \"" + name + "\","
                + " \"filename\": \"" + file + "\"}}";
    }

    /** The guest's load: verified 4 KiB random writes at QD32 for up to {@code t}, a stall of 10 s an error. */
    static WorkloadRun verifiedWrites(GuestBlkDriver g, Duration t) {
        return WorkloadRun.start(g, Workload.of(Workload.Pattern.RANDWRITE).withQueueDepth(32)
                .withBlockSize(4096).withVerify(true).withDuration(t.toNanos())
                .withStallNanos(Duration.ofSeconds(10).toNanos()));
    }

    /** Waits for the job list to empty (auto-dismiss follows the end event), then the JOB_STATUS_CHANGE statuses so far. */
    static List<String> statusesAfterDismiss(QmpClient q) throws Exception {
        while (q.execute("query-jobs", null).get("return").size() > 0) {
            Thread.onSpinWait();
        }
        List<String> statuses = new ArrayList<>();
        for (JsonNode e : q.takeEvents()) {
            if (e.get("event").asText().equals("JOB_STATUS_CHANGE")) {
                statuses.add(e.get("data").get("status").asText());
            }
        }
        return statuses;
    }

    /** Polls query-jobs until the first job is concluded; that job. */
    static JsonNode awaitConcluded(QmpClient q) throws Exception {
        JsonNode job;
        do {
            job = q.execute("query-jobs", null).get("return").get(0);
        } while (!job.get("status").asText().equals("concluded"));
        return job;
    }
}
