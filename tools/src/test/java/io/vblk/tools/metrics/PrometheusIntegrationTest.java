package io.vblk.tools.metrics;

import io.vblk.aio.AioOptions;
import io.vblk.aio.IoThread;
import io.vblk.aio.testing.Components;
import io.vblk.drivers.spec.DriverSpec;
import io.vblk.virtio.blk.BlkDeviceConfig;
import io.vblk.guest.GuestBlkDriver;
import io.vblk.guest.InProcessBlk;
import io.vblk.guest.Workload;
import io.vblk.guest.WorkloadResult;
import io.vblk.guest.WorkloadRun;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.net.ServerSocket;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.DoublePredicate;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * A real Prometheus (Debian's package, found through {@link Components}) scrapes a
 * {@link MetricsServer} in this process while the guest harness drives a virtio-blk device on the
 * file driver with Linux native AIO; Prometheus's query API must show the request
 * counters rising by exactly what the guest sent, and the latency histogram and the notification
 * counters. A missing Prometheus fails the test naming the package (scripts/install-test-deps.sh
 * installs it).
 *
 * <p>Bounded: the run takes well under a minute.
 */
@Tag("real")
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class PrometheusIntegrationTest {
    private static final Duration WAIT = Duration.ofSeconds(30);
    private static final String DASHBOARD = "docs/grafana/vblk-dashboard.json";

    @TempDir
    Path dir;
    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
    private int promPort;

    @Test
    void prometheusScrapesRequestCountersLatencyAndNotifications() throws Exception {
        String prometheus = Components.require(Components.PROMETHEUS).toString();

        Path img = dir.resolve("disk.img");
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(16 << 20);
        }
        assertThat(dashboardQueries()).isNotEmpty();
        InProcessBlk blk = InProcessBlk.start(DriverSpec.parse("file:" + img + ",aio=native,cache=none").open(),
                new BlkDeviceConfig().numQueues(2), 1, AioOptions.DEFAULT);
        GuestBlkDriver guest = null;
        Process prom = null;
        try (VblkMetrics metrics = new VblkMetrics()) {
            guest = GuestBlkDriver.attach(blk.transport(),
                    GuestBlkDriver.Options.defaults().withQueues(2).withSlots(16).withMaxDataBytes(4096));
            metrics.bindJvm();
            metrics.bindLoop(blk.control().ctx());
            for (IoThread t : blk.ioThreads()) {
                metrics.bindLoop(t.ctx());
                assertThat(metrics.bindLinuxAioOf(t.ctx())).as("engine of %s", t.name()).isNotNull();
            }
            metrics.bindDevice("vda", blk.device());
            try (MetricsServer server = MetricsServer.start(MetricsOptions.parseAddress("127.0.0.1:0"), metrics)) {
                // Load before the first scrape.
                long reads1 = run(guest, Workload.of(Workload.Pattern.RANDREAD).withRequests(500).withQueueDepth(16));
                prom = startPrometheus(prometheus, server);
                awaitValue(prom, "sum(vblk_requests_total{job=\"vblk\",op=\"read\"})", v -> v == reads1);
                long scrapesAfterFirst = server.scrapes();
                assertThat(scrapesAfterFirst).isGreaterThanOrEqualTo(1);

                // More load; a later scrape must show the counters risen by exactly that.
                long reads2 = run(guest, Workload.of(Workload.Pattern.RANDREAD).withRequests(700).withQueueDepth(16));
                long writes = run(guest, Workload.of(Workload.Pattern.RANDWRITE).withRequests(300).withQueueDepth(8));
                awaitValue(prom, "sum(vblk_requests_total{job=\"vblk\",op=\"read\"})", v -> v == reads1 + reads2);
                awaitValue(prom, "sum(vblk_requests_total{job=\"vblk\",op=\"write\"})", v -> v == writes);
                assertThat(server.scrapes()).isGreaterThan(scrapesAfterFirst);
                assertThat(query("sum(vblk_request_bytes_total{job=\"vblk\",op=\"write\"})")).isEqualTo(writes * 4096.0);

                // The latency histogram: every read timed, quantiles computable by Prometheus.
                assertThat(query("sum(vblk_request_latency_seconds_count{job=\"vblk\",op=\"read\"})"))
                        .isEqualTo((double) (reads1 + reads2));
                assertThat(query("count(vblk_request_latency_seconds_bucket{job=\"vblk\",op=\"read\"})")).isPositive();
                double p99 = query("histogram_quantile(0.99, sum by (le) "
                        + "(vblk_request_latency_seconds_bucket{job=\"vblk\",op=\"read\"}))");
                assertThat(p99).isPositive().isLessThan(5.0);
                // Notifications: asked for by completions, sent as eventfd writes.
                assertThat(query("sum(vblk_notify_requested_total{job=\"vblk\"})")).isPositive();
                assertThat(query("sum(vblk_notify_eventfd_writes_total{job=\"vblk\"})")).isPositive();
                assertThat(query("sum(vblk_notify_coalesced_total{job=\"vblk\"}) >= 0")).isNotNaN();
                // Engine, loop and process meters made it too.
                assertThat(query("sum(vblk_aio_submitted_total{job=\"vblk\"})")).isGreaterThanOrEqualTo(1.0);
                assertThat(query("sum(vblk_aio_submit_batch_count{job=\"vblk\"})")).isPositive();
                assertThat(query("sum(vblk_loop_iterations_total{job=\"vblk\"})")).isPositive();
                assertThat(query("process_files_open_files{job=\"vblk\"}")).isPositive();
                assertThat(query("up{job=\"vblk\"}")).isEqualTo(1.0);
                // Every dashboard query is valid PromQL that this Prometheus evaluates.
                for (String e : dashboardQueries()) {
                    String q = e.replace("$__rate_interval", "30s").replaceAll("\\$\\w+", ".*");
                    if (!q.startsWith("label_values(")) {
                        queryAll(q);
                    }
                }
            }
        } finally {
            stop(prom);
            if (guest != null) {
                guest.close();
            }
            blk.close();
        }
    }

    private static long run(GuestBlkDriver guest, Workload w) throws Exception {
        WorkloadResult r = WorkloadRun.start(guest, w).await(WAIT);
        assertThat(r.error()).isNull();
        assertThat(r.total().completed).isEqualTo(w.requests());
        return r.total().completed;
    }

    private static Path repoRoot() {
        Path p = Path.of("").toAbsolutePath();
        while (p != null && !Files.exists(p.resolve(DASHBOARD))) {
            p = p.getParent();
        }
        if (p == null) {
            throw new IllegalStateException(DASHBOARD + " not found above " + Path.of("").toAbsolutePath());
        }
        return p;
    }

    private Process startPrometheus(String bin, MetricsServer server) throws Exception {
        promPort = freePort();
        Path cfg = dir.resolve("prometheus.yml");
        Files.writeString(cfg, """
                global:
                  scrape_interval: 1s
                  scrape_timeout: 1s
                scrape_configs:
                  - job_name: vblk
                    metrics_path: %s
                    static_configs:
                      - targets: ['%s']
                """.formatted(MetricsOptions.DEFAULT_PATH, server.hostPort()));
        Path data = Files.createDirectories(dir.resolve("data"));
        Path log = dir.resolve("prometheus.log");
        Process p = new ProcessBuilder(bin, "--config.file=" + cfg, "--storage.tsdb.path=" + data,
                "--web.listen-address=127.0.0.1:" + promPort, "--log.level=warn")
                .redirectErrorStream(true).redirectOutput(log.toFile()).start();
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (true) {
            if (!p.isAlive()) {
                throw new AssertionError("prometheus exited with " + p.exitValue() + ":\n" + Files.readString(log));
            }
            try {
                HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(promUrl("/-/ready")))
                        .timeout(Duration.ofSeconds(2)).build(), HttpResponse.BodyHandlers.ofString());
                if (r.statusCode() == 200) {
                    return p;
                }
            } catch (IOException notYet) {
                // not listening yet
            }
            if (System.nanoTime() > deadline) {
                throw new AssertionError("prometheus not ready within " + WAIT + ":\n" + Files.readString(log));
            }
            p.waitFor(100, TimeUnit.MILLISECONDS); // a bounded pause that also notices an exit
        }
    }

    private static void stop(Process p) throws InterruptedException {
        if (p == null) {
            return;
        }
        p.destroy();
        if (!p.waitFor(15, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            p.waitFor(5, TimeUnit.SECONDS);
        }
        assertThat(p.isAlive()).as("prometheus still running").isFalse();
    }

    private String promUrl(String path) {
        return "http://127.0.0.1:" + promPort + path;
    }

    /** The expressions of docs/grafana/vblk-dashboard.json. */
    private static List<String> dashboardQueries() throws IOException {
        Object dash = MiniJson.parse(Files.readString(repoRoot().resolve(DASHBOARD)));
        List<String> out = new java.util.ArrayList<>();
        collectExprs(dash, out);
        assertThat(out).isNotEmpty();
        return out;
    }

    private static void collectExprs(Object node, List<String> out) {
        if (node instanceof Map<?, ?> m) {
            m.forEach((k, v) -> {
                if (k.equals("expr") && v instanceof String s) {
                    out.add(s);
                } else {
                    collectExprs(v, out);
                }
            });
        } else if (node instanceof List<?> l) {
            l.forEach(o -> collectExprs(o, out));
        }
    }

    /** Runs a query of any result shape; fails unless Prometheus accepts and evaluates it. */
    private void queryAll(String q) throws Exception {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(promUrl("/api/v1/query?query="
                + URLEncoder.encode(q, StandardCharsets.UTF_8)))).timeout(Duration.ofSeconds(5)).build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(r.statusCode()).as("dashboard query %s: %s", q, r.body()).isEqualTo(200);
    }

    /** An instant query's single value (NaN when the result is empty). */
    @SuppressWarnings("unchecked")
    private double query(String q) throws Exception {
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(promUrl("/api/v1/query?query="
                + URLEncoder.encode(q, StandardCharsets.UTF_8)))).timeout(Duration.ofSeconds(5)).build(),
                HttpResponse.BodyHandlers.ofString());
        assertThat(r.statusCode()).as("query %s: %s", q, r.body()).isEqualTo(200);
        Map<String, Object> body = (Map<String, Object>) MiniJson.parse(r.body());
        assertThat(body.get("status")).isEqualTo("success");
        Map<String, Object> data = (Map<String, Object>) body.get("data");
        List<Object> result = (List<Object>) data.get("result");
        if (result.isEmpty()) {
            return Double.NaN;
        }
        assertThat(result).as("query %s returns one series", q).hasSize(1);
        List<Object> value = (List<Object>) ((Map<String, Object>) result.get(0)).get("value");
        return Double.parseDouble((String) value.get(1));
    }

    /** Polls an instant query until its value passes {@code ok}, bounded by {@link #WAIT}. */
    private void awaitValue(Process prom, String q, DoublePredicate ok) throws Exception {
        long deadline = System.nanoTime() + WAIT.toNanos();
        double v = query(q);
        while (!ok.test(v)) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("query " + q + " stayed at " + v + " for " + WAIT);
            }
            // A bounded pause between queries that also ends the wait if Prometheus dies.
            if (prom.waitFor(100, TimeUnit.MILLISECONDS)) {
                throw new AssertionError("prometheus exited with " + prom.exitValue() + " while waiting for " + q);
            }
            v = query(q);
        }
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }
}
