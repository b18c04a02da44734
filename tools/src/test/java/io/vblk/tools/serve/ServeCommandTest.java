package io.vblk.tools.serve;

import io.vblk.aio.engine.AioMode;
import io.vblk.tools.Main;
import io.vblk.guest.GuestBlkDriver;
import io.vblk.guest.Workload;
import io.vblk.guest.WorkloadResult;
import io.vblk.guest.WorkloadRun;
import io.vblk.guest.vhost.VhostUserTransport;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.io.RandomAccessFile;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

@Timeout(value = 120, unit = TimeUnit.SECONDS)
class ServeCommandTest {
    @TempDir
    Path dir;

    private record Run(int code, String out, String err) {
    }

    private static Run run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        CommandLine cl = new CommandLine(new ServeCommand());
        cl.setOut(new PrintWriter(out, true));
        cl.setErr(new PrintWriter(err, true));
        int code = cl.execute(args);
        return new Run(code, out.toString(), err.toString());
    }

    private static ServeConfig config(String... args) throws Exception {
        ServeCommand c = new ServeCommand();
        new CommandLine(c).parseArgs(args);
        return c.config();
    }

    @Test
    void badOptionsStopStartUpNamingTheOptionAndWhatItAccepts() {
        Run r = run("--blockdev", "driver=null-co,node-name=n0", "--export",
                "type=vhost-user-blk,id=e0,node-name=n0,addr.type=unix,addr.path=/tmp/x,num-queues=99");
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).startsWith("vblk serve: --export").contains("num-queues=99").contains("accepts 1..64");
        r = run("disk.img");
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("needs --socket PATH");
        r = run("--socket", "/tmp/s");
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("belong to the short form and need an IMAGE");
        r = run("disk.img", "--socket", "/tmp/s", "--aio", "native", "--cache", "writeback");
        assertThat(r.err()).contains("--aio=native needs --cache=none");
        r = run("disk.img", "--socket", "/tmp/s", "--aio", "posix");
        assertThat(r.err()).contains("--aio=posix is not valid; accepts threads, native or io_uring");
        r = run("disk.img", "--socket", "/tmp/s", "--cache", "directsync");
        assertThat(r.err()).contains("--cache=directsync is not valid; accepts writeback or none");
        r = run("--num-queues", "two", "disk.img");
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("--num-queues").contains("two");
        r = run("--metrics", "nowhere:99999", "disk.img", "--socket", "/tmp/s");
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).startsWith("vblk serve: --metrics");
        r = run("--vnc", "addr.type=unix,addr.path=/x");
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("Unknown option: '--vnc'");
        r = run("--nbd-server", "addr.type=tcp,addr.path=/x");
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).contains("addr.type=tcp is not supported; accepts unix or inet");
    }

    @Test
    void hostErrorsAtStartUpNameTheOption() throws Exception {
        Run r = run("--blockdev", "driver=file,node-name=d0,filename=" + dir.resolve("missing.img"), "--export",
                "type=vhost-user-blk,id=e0,node-name=d0,addr.type=unix,addr.path=" + dir.resolve("s.sock"));
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).startsWith("vblk serve: --blockdev node-name=d0: cannot open");
        r = run("--blockdev", "driver=null-co,node-name=n0", "--export",
                "type=vhost-user-blk,id=e0,node-name=n0,addr.type=unix,addr.path=" + dir.resolve("no/such/dir/s.sock"));
        assertThat(r.code()).isEqualTo(2);
        assertThat(r.err()).startsWith("vblk serve: --export id=e0: ").contains("cannot listen on");
    }

    @Test
    void shortFormIsTheLongFormOfOneFileExport() throws Exception {
        ServeConfig c = config("/img/a,b.img", "--socket", "/run/v.sock", "--num-queues", "4", "--iothreads", "2",
                "--aio", "native");
        assertThat(c.blockdevs()).containsExactly(new ServeConfig.FileNode("disk0", "/img/a,b.img", AioMode.NATIVE, true, false));
        assertThat(c.iothreads()).extracting(ServeConfig.IoThreadSpec::id).containsExactly("io0", "io1");
        ServeConfig.ExportSpec e = c.exports().getFirst();
        assertThat(e.address()).isEqualTo(new ServeConfig.UnixPath("/run/v.sock"));
        assertThat(e.numQueues()).isEqualTo(4);
        assertThat(e.writable()).isTrue();
        assertThat(e.iothreads()).containsExactly("io0", "io1");
        assertThat(config("x.img", "--socket", "/s", "--read-only").exports().getFirst().writable()).isFalse();
        // io_uring runs with and without the host page cache (default writeback, as for threads).
        assertThat(config("x.img", "--socket", "/s", "--aio", "io_uring").blockdevs())
                .containsExactly(new ServeConfig.FileNode("disk0", "x.img", AioMode.IO_URING, false, false));
        assertThat(config("x.img", "--socket", "/s", "--aio", "io_uring", "--cache", "none").blockdevs())
                .containsExactly(new ServeConfig.FileNode("disk0", "x.img", AioMode.IO_URING, true, false));
    }

    @Test
    void daemonServesAGuestAndShutsDownCleanly() throws Exception {
        Path img = dir.resolve("disk.img");
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(8L << 20);
        }
        String sock = dir.resolve("vblk.sock").toString();
        ServeCommand cmd = new ServeCommand();
        new CommandLine(cmd).parseArgs("--object", "iothread,id=io0", "--object", "iothread,id=io1",
                "--blockdev", "driver=file,node-name=d0,filename=" + img,
                "--blockdev", "driver=null-aio,node-name=n0,size=64M",
                "--export", "type=vhost-user-blk,id=e0,node-name=d0,addr.type=unix,addr.path=" + sock
                        + ",writable=on,num-queues=2,iothread.0=io0,iothread.1=io1",
                "--export", "type=vhost-user-blk,id=e1,node-name=n0,addr.type=unix,addr.path=" + sock + "2",
                "--object", "metrics,id=m0,addr=127.0.0.1:0");
        ServeDaemon d = ServeDaemon.start(cmd.config(), cmd.metricsOptions());
        try {
            try (VhostUserTransport t = VhostUserTransport.connect(sock, Duration.ofSeconds(10));
                 GuestBlkDriver g = GuestBlkDriver.attach(t, GuestBlkDriver.Options.defaults().withQueues(2))) {
                WorkloadResult r = WorkloadRun.start(g, Workload.of(Workload.Pattern.RANDRW).withQueueDepth(8)
                        .withRequests(1000).withVerify(true)).await(Duration.ofSeconds(60));
                assertThat(r.error()).isNull();
                assertThat(r.total().verifyFailures).isZero();
                String body = java.net.http.HttpClient.newHttpClient().send(
                        java.net.http.HttpRequest.newBuilder(java.net.URI.create(d.metricsUrl())).build(),
                        java.net.http.HttpResponse.BodyHandlers.ofString()).body();
                assertThat(body).contains("vblk_vhost_connections{export=\"e0\"} 1.0")
                        .containsPattern("vblk_vhost_messages_total\\{export=\"e0\",type=\"set_vring_kick\"} 2.0");
            }
            try (VhostUserTransport t = VhostUserTransport.connect(sock + "2", Duration.ofSeconds(10));
                 GuestBlkDriver g = GuestBlkDriver.attach(t, GuestBlkDriver.Options.defaults())) {
                assertThat(g.config().capacitySectors()).isEqualTo((64L << 20) / 512);
                assertThat(t.deviceFeatures() & (1L << 5)).as("VIRTIO_BLK_F_RO: writable defaults to off, as in qemu-storage-daemon").isNotZero();
            }
        } finally {
            assertThat(d.shutdown(Duration.ofSeconds(20))).isTrue();
        }
        assertThat(Files.exists(Path.of(sock))).isFalse();
    }

    /**
     * Every guard's meter is on /metrics after a workload: seed 000's depth guard and the Linux AIO
     * and io_uring engine counters from the first request on (bound when the queues open their
     * engines), seed 002's hand-overs, seed 003's drained sections and requests started inside one
     * (0: the guard is on), seed 004's nested waits.
     */
    @Test
    void everyGuardMeterIsServedFromTheFirstRequest() throws Exception {
        Path img = dir.resolve("disk.img");
        Path img2 = dir.resolve("disk2.img");
        for (Path p : List.of(img, img2)) {
            try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
                f.setLength(8L << 20);
            }
        }
        String sock = dir.resolve("vblk.sock").toString();
        ServeCommand cmd = new ServeCommand();
        new CommandLine(cmd).parseArgs("--object", "iothread,id=io0", "--object", "iothread,id=io1",
                "--blockdev", "driver=file,node-name=d0,aio=native,cache.direct=on,filename=" + img,
                "--blockdev", "driver=file,node-name=d1,aio=io_uring,filename=" + img2,
                "--export", "type=vhost-user-blk,id=e0,node-name=d0,addr.type=unix,addr.path=" + sock
                        + ",writable=on,iothread=io0",
                "--export", "type=vhost-user-blk,id=e1,node-name=d1,addr.type=unix,addr.path=" + sock + "2"
                        + ",writable=on,iothread=io1",
                "--object", "metrics,id=m0,addr=127.0.0.1:0");
        ServeDaemon d = ServeDaemon.start(cmd.config(), cmd.metricsOptions());
        try {
            for (String s : List.of(sock, sock + "2")) {
                try (VhostUserTransport t = VhostUserTransport.connect(s, Duration.ofSeconds(10));
                     GuestBlkDriver g = GuestBlkDriver.attach(t, GuestBlkDriver.Options.defaults())) {
                    WorkloadResult first = WorkloadRun.start(g, Workload.of(Workload.Pattern.RANDREAD).withQueueDepth(1)
                            .withRequests(1)).await(Duration.ofSeconds(60));
                    assertThat(first.error()).isNull();
                    String engine = s.equals(sock) ? "vblk_aio_io_submit_calls_total\\{iothread=\"io0\"}"
                            : "vblk_uring_enter_calls_total\\{iothread=\"io1\"}";
                    assertThat(scrape(d)).as("the engine's meters after the first request")
                            .containsPattern(engine + " [1-9]");
                    WorkloadResult r = WorkloadRun.start(g, Workload.of(Workload.Pattern.RANDRW).withQueueDepth(8)
                            .withRequests(1000).withVerify(true)).await(Duration.ofSeconds(60));
                    assertThat(r.error()).isNull();
                }
            }
            String body = scrape(d);
            for (String engine : List.of("linux-aio\",iothread=\"io0", "io_uring\",iothread=\"io1")) {
                assertThat(body).containsPattern("vblk_guard_submit_depth_cap_hits_total\\{engine=\"" + engine + "\"} ")
                        .containsPattern("vblk_guard_submit_depth_max\\{engine=\"" + engine + "\"} [1-9]");
            }
            for (String loop : List.of("io0", "io1")) {
                for (String m : List.of("vblk_guard_foreign_completions_total", "vblk_guard_drained_sections_total",
                        "vblk_guard_drain_rechecks_total", "vblk_guard_nested_waits_total",
                        "vblk_guard_nested_wait_timeouts_total")) {
                    assertThat(body).containsPattern(m + "\\{iothread=\"" + loop + "\"} \\d");
                }
            }
            assertThat(body).contains("vblk_guard_drained_requests_started_total{export=\"e0\",iothread=\"io0\",queue=\"0\"} 0.0")
                    .contains("vblk_guard_drained_requests_started_total{export=\"e1\",iothread=\"io1\",queue=\"0\"} 0.0")
                    .containsPattern("vblk_aio_completed_total\\{iothread=\"io0\"} [1-9]")
                    .containsPattern("vblk_uring_completed_total\\{iothread=\"io1\"} [1-9]")
                    // Seed 001: the daemon's periodic work (the footprint sampler) and its wake-order meter.
                    .containsPattern("vblk_guard_wakes_before_sleep_total\\{iothread=\"main-loop\",sleeper=\"footprint-sampler\"} \\d")
                    .containsPattern("vblk_process_resident_bytes\\{sleeper=\"footprint-sampler\"} [1-9]")
                    .containsPattern("vblk_process_open_fds\\{sleeper=\"footprint-sampler\"} [1-9]")
                    .containsPattern("vblk_process_threads\\{sleeper=\"footprint-sampler\"} [1-9]");
        } finally {
            assertThat(d.shutdown(Duration.ofSeconds(20))).isTrue();
        }
    }

    private static String scrape(ServeDaemon d) throws Exception {
        return java.net.http.HttpClient.newHttpClient().send(
                java.net.http.HttpRequest.newBuilder(java.net.URI.create(d.metricsUrl())).build(),
                java.net.http.HttpResponse.BodyHandlers.ofString()).body();
    }

    @Test
    void sigtermWhileAGuestRunsStopsAcceptingFinishesAndExitsZero() throws Exception {
        Path img = dir.resolve("disk.img");
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(8L << 20);
        }
        String sock = dir.resolve("vblk.sock").toString();
        Path pidfile = dir.resolve("vblk.pid");
        List<String> cmd = new ArrayList<>(List.of(ProcessHandle.current().info().command().orElseThrow(),
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"), Main.class.getName(),
                "serve", img.toString(), "--socket", sock, "--num-queues", "2", "--iothreads", "1",
                "--pidfile", pidfile.toString(), "--shutdown-timeout", "20"));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        StringBuilder log = new StringBuilder();
        CompletableFuture<Void> ready = new CompletableFuture<>();
        // A platform thread: the guest's vCPU threads must not be able to starve the reader.
        Thread reader = Thread.ofPlatform().daemon().start(() -> {
            try (BufferedReader br = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = br.readLine()) != null) {
                    synchronized (log) {
                        log.append(line).append('\n');
                    }
                    if (line.startsWith(ServeCommand.READY)) {
                        ready.complete(null);
                    }
                }
            } catch (Exception e) {
                ready.completeExceptionally(e);
            }
            ready.completeExceptionally(new IllegalStateException("vblk serve exited before it was ready"));
        });
        try {
            ready.get(60, TimeUnit.SECONDS);
            assertThat(Long.parseLong(Files.readString(pidfile).trim())).isEqualTo(p.pid());
            VhostUserTransport t = VhostUserTransport.connect(sock, Duration.ofSeconds(10));
            GuestBlkDriver g = GuestBlkDriver.attach(t, GuestBlkDriver.Options.defaults().withQueues(2));
            WorkloadRun run = WorkloadRun.start(g, Workload.of(Workload.Pattern.RANDWRITE).withQueueDepth(16)
                    .withDuration(Duration.ofSeconds(30).toNanos()));
            assertThat(g.queue(0)).isNotNull();
            // SIGTERM with the guest's requests in flight; through the handle, as Process.destroy() would also close
            // our end of the pipe and lose what the daemon says while it stops.
            p.toHandle().destroy();
            assertThat(p.waitFor(30, TimeUnit.SECONDS)).as("exits in bounded time").isTrue();
            run.stop();
            // The vCPU threads must be gone before the guest's RAM is unmapped by g.close(): with the
            // back-end gone, a runner ends once nothing is in flight or when its stall bound fires.
            run.await(Duration.ofSeconds(30));
            assertThat(run.isDone()).as("vCPU threads ended").isTrue();
            assertThat(p.exitValue()).as(log.toString()).isZero();
            assertThat(Files.exists(pidfile)).isFalse();
            assertThat(Files.exists(Path.of(sock))).isFalse();
            try {
                g.close();
            } catch (RuntimeException expected) {
                // the back-end is gone: stopping its queues cannot be answered
            }
            t.close();
            reader.join(10_000);
            synchronized (log) {
                assertThat(log.toString()).contains("vblk serve: stopped").doesNotContain("not cleanly");
            }
        } finally {
            p.destroyForcibly();
        }
    }
}
