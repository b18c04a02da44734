package io.vblk.tools.metrics;

import io.vblk.aio.AioContext;
import io.vblk.aio.engine.SubmissionQueue;
import io.vblk.aio.linuxaio.LinuxAio;
import io.vblk.aio.linuxaio.LoopSteps;
import io.vblk.aio.metrics.Meter;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

@Timeout(value = 30, unit = TimeUnit.SECONDS)
class MetricsServerTest {
    @TempDir
    Path dir;
    private AioContext ctx;
    private SubmissionQueue aio;
    private VblkMetrics metrics;
    private final HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    @BeforeEach
    void setUp() {
        ctx = AioContext.forCurrentThread("io0");
        aio = LinuxAio.of(ctx);
        metrics = new VblkMetrics();
        metrics.bindLoop(ctx);
        metrics.bindLinuxAio(aio);
    }

    @AfterEach
    void tearDown() {
        metrics.close();
        aio.release();
        ctx.close();
    }

    private HttpResponse<String> get(String url, String accept, String method) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(5));
        if (accept != null) {
            b.header("Accept", accept);
        }
        b.method(method, HttpRequest.BodyPublishers.noBody());
        return http.send(b.build(), HttpResponse.BodyHandlers.ofString());
    }

    @Test
    void servesTextFormatAndOpenMetricsWithLiveValues() throws Exception {
        try (AioFixture f = new AioFixture(dir.resolve("img"), true, 1 << 20);
             MetricsServer server = MetricsServer.start(MetricsOptions.parseAddress("127.0.0.1:0"), metrics)) {
            f.writeBatch(aio, 5);
            LoopSteps.pollUntil(ctx, () -> f.completed == 5, "5 writes");
            assertThat(server.address().getAddress().isLoopbackAddress()).isTrue();

            HttpResponse<String> text = get(server.url(), null, "GET");
            assertThat(text.statusCode()).isEqualTo(200);
            assertThat(text.headers().firstValue("Content-Type")).hasValue(VblkMetrics.Scrape.TEXT_004);
            String body = text.body();
            assertThat(body).contains("# TYPE vblk_aio_submitted_total counter")
                    .contains("vblk_aio_submitted_total{iothread=\"io0\"} 5.0")
                    .contains("# TYPE vblk_aio_submit_batch histogram")
                    .contains("vblk_aio_submit_batch_bucket{iothread=\"io0\",le=\"4.0\"} 0")
                    .contains("vblk_aio_submit_batch_bucket{iothread=\"io0\",le=\"6.0\"} 1")
                    .contains("vblk_aio_submit_batch_bucket{iothread=\"io0\",le=\"+Inf\"} 1")
                    .contains("vblk_aio_submit_batch_count{iothread=\"io0\"} 1")
                    .contains("vblk_aio_submit_batch_sum{iothread=\"io0\"} 5.0")
                    .contains("vblk_loop_blocked_seconds_total{iothread=\"io0\"}")
                    .contains("# HELP vblk_aio_in_flight " + Meter.AIO_IN_FLIGHT.description());

            HttpResponse<String> om = get(server.url(),
                    "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5", "GET");
            assertThat(om.statusCode()).isEqualTo(200);
            assertThat(om.headers().firstValue("Content-Type").orElseThrow()).startsWith("application/openmetrics-text");
            assertThat(om.body()).endsWith("# EOF\n").contains("vblk_aio_submitted_total{iothread=\"io0\"} 5.0");

            assertThat(get(server.url(), null, "HEAD").statusCode()).isEqualTo(200);
            assertThat(get("http://" + server.hostPort() + "/nope", null, "GET").statusCode()).isEqualTo(404);
            HttpResponse<String> post = get(server.url(), null, "POST");
            assertThat(post.statusCode()).isEqualTo(405);
            assertThat(post.headers().firstValue("Allow")).hasValue("GET, HEAD");
            assertThat(server.scrapes()).isEqualTo(3);
        }
    }

    /** Every family a bound meter shows in the scrape is named as the catalogue says. */
    /** Two writes, so the engine's batch histogram has a record (empty histograms are not shown). */
    private void someIo() {
        try (AioFixture f = new AioFixture(dir.resolve("img"), true, 1 << 20)) {
            f.writeBatch(aio, 2);
            LoopSteps.pollUntil(ctx, () -> f.completed == 2, "2 writes");
        }
    }

    @Test
    void catalogueNamesAreWhatPrometheusShows() {
        someIo();
        metrics.bindJvm();
        String body = metrics.scrape(null).body();
        List<String> types = Arrays.stream(body.split("\n")).filter(l -> l.startsWith("# TYPE vblk_")).toList();
        assertThat(types).isNotEmpty();
        for (String l : types) {
            String family = l.split(" ")[2];
            String type = l.split(" ")[3];
            // The text format names a counter's family with its _total suffix.
            String name = family;
            Meter m = Meter.byPrometheusName(name);
            assertThat(m).as("family %s (%s) is not in the catalogue", family, type).isNotNull();
            assertThat(type).isEqualTo(switch (m.kind()) {
                case COUNTER -> "counter";
                case GAUGE -> "gauge";
                case HISTOGRAM -> "histogram";
            });
        }
        for (Meter m : new Meter[] {Meter.LOOP_ITERATIONS, Meter.AIO_IN_FLIGHT, Meter.LOOP_BLOCKED}) {
            assertThat(body).contains("\n" + m.prometheusName() + "{");
        }
        assertThat(body).contains("\n" + Meter.AIO_SUBMIT_BATCH.prometheusName() + "_bucket{");
        assertThat(body).contains("jvm_memory_used_bytes").contains("process_files_open_files")
                .contains("jvm_threads_live_threads").contains("process_cpu_usage");
    }

    @Test
    void snapshotForBenchJson() {
        Map<String, Number> snap = metrics.snapshot(false);
        assertThat(snap).containsKey("vblk_aio_submitted_total{iothread=io0}")
                .containsKey("vblk_aio_submit_batch_count{iothread=io0}")
                .containsKey("vblk_aio_submit_batch{iothread=io0,quantile=0.99}")
                .containsKey("vblk_loop_iterations_total{iothread=io0}");
        assertThat(snap.keySet()).allMatch(k -> k.startsWith("vblk_"));
        metrics.bindJvm();
        assertThat(metrics.snapshot(true).keySet()).anyMatch(k -> k.startsWith("jvm_memory_used_bytes{"));
    }

    @Test
    void tagsMustFollowTheCatalogue() {
        assertThatThrownBy(() -> VblkMetrics.tags(Meter.REQUESTS, "disk0"))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("[export, queue, iothread, op]");
    }

    @Test
    void aPortInUseIsNamed() {
        try (MetricsServer a = MetricsServer.start(MetricsOptions.parseAddress("127.0.0.1:0"), metrics)) {
            int port = a.address().getPort();
            assertThatThrownBy(() -> MetricsServer.start(MetricsOptions.parseAddress("127.0.0.1:" + port), metrics))
                    .isInstanceOf(MetricsOptionException.class).hasMessageContaining("cannot listen")
                    .hasMessageContaining(String.valueOf(port));
        }
    }

    @Test
    void closedBindingsLeaveTheScrape() {
        someIo();
        Binding b = metrics.bindings().stream().filter(x -> x.what().startsWith("linux-aio")).findFirst().orElseThrow();
        assertThat(metrics.scrape(null).body()).contains("vblk_aio_submit_batch");
        b.close();
        String body = metrics.scrape(null).body();
        assertThat(body).doesNotContain("vblk_aio_submitted_total{").doesNotContain("vblk_aio_submit_batch_count{");
        assertThat(body).contains("vblk_loop_iterations_total{");
    }
}
