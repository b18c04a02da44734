package io.vblk.tools.bench;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.IoThread;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.spec.DriverSpec;
import io.vblk.virtio.blk.BlkDevice;
import io.vblk.virtio.blk.BlkDeviceConfig;
import io.vblk.virtio.device.IoThreadMapping;
import io.vblk.virtio.vhost.socket.VhostUserExport;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import picocli.CommandLine;

import java.io.PrintWriter;
import java.io.RandomAccessFile;
import java.io.StringWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.assertj.core.api.Assertions.assertThat;

/** {@code vblk bench} end to end: the real device, drivers and guest, in this JVM. */
@Timeout(120)
class BenchCommandTest {
    private record Run(int exit, String out, String err) {
    }

    private static Run bench(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        CommandLine cl = new CommandLine(new BenchCommand());
        cl.setOut(new PrintWriter(out));
        cl.setErr(new PrintWriter(err));
        int exit = cl.execute(args);
        return new Run(exit, out.toString(), err.toString());
    }

    private static double number(String json, String key) {
        Matcher m = Pattern.compile("\"" + Pattern.quote(key) + "\":(-?[0-9.]+)").matcher(json);
        assertThat(m.find()).as("%s in %s", key, json).isTrue();
        return Double.parseDouble(m.group(1));
    }

    @Test
    void jsonReportForTheNullDriver() {
        Run r = bench("--driver", "null:size=64M", "--rw", "randread", "--bs", "4k", "--qd", "8", "--requests", "4000",
                "--json", "--progress", "off");
        assertThat(r.exit()).as(r.err()).isZero();
        String j = r.out().trim();
        assertThat(j).startsWith("{").endsWith("}").doesNotContain("\n");
        assertThat(number(j, "requests")).isEqualTo(4000);
        assertThat(number(j, "iops")).isPositive();
        assertThat(number(j, "mb_per_s")).isPositive();
        assertThat(number(j, "p50")).isPositive();
        assertThat(number(j, "p99_9")).isGreaterThanOrEqualTo(number(j, "p50"));
        assertThat(number(j, "notifications_per_request")).isBetween(0.0, 1.0);
        assertThat(number(j, "cpu_us_per_request")).isPositive();
        assertThat(j).contains("\"io_submit_calls\":null", "\"ok\":true", "\"error\":null", "\"rw\":\"randread\"");
    }

    @Test
    void jsonCarriesTheSameMetersServeExportsForTheRun() {
        Run r = bench("--driver", "null:size=64M", "--rw", "randread", "--qd", "8", "--requests", "3000",
                "--json", "--progress", "off");
        assertThat(r.exit()).as(r.err()).isZero();
        String j = r.out();
        assertThat(j).contains("\"meters\":{");
        // The device's own read counter saw every request the guest completed; a few more may be
        // in the ring when the run stops, never fewer.
        java.util.regex.Matcher m = java.util.regex.Pattern
                .compile("\"vblk_requests_total\\{[^}]*op=read[^}]*}\":(\\d+)").matcher(j);
        assertThat(m.find()).as(j).isTrue();
        assertThat(Long.parseLong(m.group(1))).isGreaterThanOrEqualTo(3000);
        assertThat(j).contains("vblk_notify_eventfd_writes_total", "vblk_request_latency_seconds", "vblk_loop_iterations_total");
    }

    @Test
    void textReportNamesEveryFigure() {
        Run r = bench("--driver", "null:size=16M,completion=async", "--rw", "randrw", "--rwmixread", "70",
                "--qd", "4", "--queues", "2", "--iothreads", "2", "--duration", "300ms", "--progress", "off");
        assertThat(r.exit()).as(r.err()).isZero();
        assertThat(r.out()).contains("IOPS", "bandwidth", "latency us", "p50", "p99", "p99.9", "notifications",
                "io_submit", "CPU", "rwmixread=70", "queues=2", "iothreads=2", "result        ok");
    }

    @Test
    void fileDriverWithVerifyAndNativeAioCountsIoSubmit(@TempDir Path dir) throws Exception {
        Path img = dir.resolve("disk.img");
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(8L << 20);
        }
        Run r = bench("--driver", "file:" + img + ",aio=native,cache=none", "--rw", "randrw", "--qd", "16",
                "--queues", "2", "--requests", "4000", "--verify", "--json", "--progress", "off");
        assertThat(r.exit()).as(r.out() + r.err()).isZero();
        String j = r.out();
        assertThat(j).contains("\"ok\":true");
        assertThat(number(j, "failures")).isZero();
        assertThat(number(j, "sectors_checked")).isPositive();
        assertThat(number(j, "blocks_read_back")).isPositive();
        double perRequest = number(j, "io_submit_per_request");
        assertThat(perRequest).isGreaterThan(0.0).isLessThanOrEqualTo(1.0);
        // Every guard's meter is in the run's meters: the engine's (seed 000) from its first channel,
        // the loops' (seeds 002, 003, 004) and the queues' drained starts, which stay 0.
        assertThat(j).contains("vblk_aio_io_submit_calls_total", "vblk_guard_submit_depth_cap_hits_total{",
                "vblk_guard_submit_depth_max{", "vblk_guard_foreign_completions_total{", "vblk_guard_drained_sections_total{",
                "vblk_guard_nested_waits_total{", "vblk_guard_nested_wait_timeouts_total{");
        java.util.regex.Matcher m = java.util.regex.Pattern
                .compile("\"vblk_guard_drained_requests_started_total\\{[^}]*}\":(\\d+)").matcher(j);
        int queues = 0;
        while (m.find()) {
            queues++;
            assertThat(m.group(1)).isEqualTo("0");
        }
        assertThat(queues).isEqualTo(2);
    }

    /** --ring packed: the guest and the device negotiate VIRTIO_F_RING_PACKED; multi-segment requests verified. */
    @Test
    void packedRingWithVerifyAndMultiSegmentChains(@TempDir Path dir) throws Exception {
        Path img = dir.resolve("disk.img");
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(8L << 20);
        }
        Run r = bench("--driver", "file:" + img + ",aio=threads", "--ring", "packed", "--rw", "randrw", "--qd", "8",
                "--queue-size", "64", "--no-indirect", "--segments", "3", "--queues", "2", "--requests", "4000",
                "--verify", "--progress", "off");
        assertThat(r.exit()).as(r.out() + r.err()).isZero();
        assertThat(r.out()).contains("RING_PACKED", "result        ok").containsPattern("verify +[1-9][0-9]* sectors checked")
                .contains(" 0 failures");
        Run split = bench("--driver", "null:size=16M", "--requests", "200", "--progress", "off");
        assertThat(split.exit()).as(split.err()).isZero();
        assertThat(split.out()).doesNotContain("RING_PACKED");
        Run bad = bench("--ring", "ring", "--requests", "10", "--progress", "off");
        assertThat(bad.exit()).isNotZero();
        assertThat(bad.err()).contains("--ring", "split or packed");
    }

    /** aio=io_uring in bench, O_DIRECT and page cache: every block read back verified. */
    @ParameterizedTest
    @ValueSource(strings = {"none", "writeback"})
    void fileDriverWithVerifyOnIoUring(String cache, @TempDir Path dir) throws Exception {
        Path img = dir.resolve("disk.img");
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(8L << 20);
        }
        Run r = bench("--driver", "file:" + img + ",aio=io_uring,cache=" + cache, "--rw", "randrw", "--qd", "16",
                "--queues", "2", "--requests", "4000", "--verify", "--json", "--progress", "off");
        assertThat(r.exit()).as(r.out() + r.err()).isZero();
        String j = r.out();
        assertThat(j).contains("\"ok\":true", "aio=io_uring");
        assertThat(number(j, "failures")).isZero();
        assertThat(number(j, "sectors_checked")).isPositive();
        assertThat(number(j, "blocks_read_back")).isPositive();
    }

    @Test
    void vhostUserTargetDrivesAServerOverItsSocket(@TempDir Path dir) {
        IoThread control = IoThread.start("test-main-loop", AioOptions.DEFAULT);
        IoThread io = IoThread.start("test-io0", AioOptions.DEFAULT);
        BlockDriver driver = DriverSpec.open("null:size=64M");
        String sock = dir.resolve("vblk.sock").toString();
        AioContext c = control.ctx();
        BlkDevice[] device = new BlkDevice[1];
        VhostUserExport export = AioContext.await(c.callOn(() -> {
            device[0] = new BlkDevice("vda", driver, new BlkDeviceConfig().numQueues(2)
                    .ioThreads(IoThreadMapping.single(io.ctx())), c);
            return VhostUserExport.listen("vda", c, device[0], sock);
        }), Duration.ofSeconds(10));
        try {
            Run r = bench("--target", "vhost-user:" + sock, "--rw", "randread", "--qd", "8", "--queues", "2",
                    "--requests", "4000", "--json", "--progress", "off");
            assertThat(r.exit()).as(r.out() + r.err()).isZero();
            assertThat(number(r.out(), "requests")).isEqualTo(4000);
            assertThat(r.out()).contains("\"target\":\"vhost-user:" + sock + "\"", "\"iothreads\":null",
                    "\"driver\":null", "\"ok\":true");
            Run local = bench("--target", "vhost-user:" + sock, "--driver", "null", "--requests", "10");
            assertThat(local.exit()).isEqualTo(2);
            assertThat(local.err()).contains("--driver applies to --target in-process only");
        } finally {
            CompletableFuture<Void> idle = new CompletableFuture<>();
            AioContext.await(c.callOn(() -> {
                export.close(() -> device[0].close(() -> idle.complete(null)));
                return null;
            }), Duration.ofSeconds(10));
            AioContext.await(idle, Duration.ofSeconds(10));
            io.close();
            control.close();
            driver.close();
        }
        Run gone = bench("--target", "vhost-user:" + sock, "--requests", "10");
        assertThat(gone.exit()).isEqualTo(2);
        assertThat(gone.err()).contains("--target vhost-user:" + sock);
    }

    @Test
    void badOptionsNameTheOptionAndWhatItAccepts() {
        Run bs = bench("--bs", "1000", "--requests", "1");
        assertThat(bs.exit()).isEqualTo(2);
        assertThat(bs.err()).contains("--bs", "multiple of 512");
        Run rw = bench("--rw", "sideways", "--requests", "1");
        assertThat(rw.exit()).isEqualTo(2);
        assertThat(rw.err()).contains("--rw", "randread");
        Run qd = bench("--qd", "0", "--requests", "1");
        assertThat(qd.err()).contains("--qd", "1..1024");
        Run dur = bench("--duration", "soon");
        assertThat(dur.err()).contains("--duration", "10s");
        Run drv = bench("--driver", "tape:/dev/st0", "--requests", "1");
        assertThat(drv.exit()).isEqualTo(2);
        assertThat(drv.err()).contains("--driver", "unknown driver");
        Run nullVerify = bench("--driver", "null", "--verify", "--requests", "1");
        assertThat(nullVerify.exit()).isEqualTo(2);
        assertThat(nullVerify.err()).contains("--driver", "verify mode needs a driver that keeps");
        Run tgt = bench("--target", "elsewhere", "--requests", "1");
        assertThat(tgt.err()).contains("--target", "in-process or vhost-user:SOCKET");
    }

    @Test
    void aRunThatFailsExitsWithOne() {
        // A read-only null device refuses writes with IOERR: the run stops and says so.
        Run r = bench("--driver", "null:size=16M,ro=on", "--rw", "randwrite", "--requests", "100", "--qd", "2",
                "--progress", "off");
        assertThat(r.exit()).isEqualTo(BenchCommand.EXIT_RUN_FAILED);
        assertThat(r.out()).contains("FAILED", "IOERR");
    }
}
