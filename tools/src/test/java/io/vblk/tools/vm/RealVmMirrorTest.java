package io.vblk.tools.vm;

import com.fasterxml.jackson.databind.JsonNode;
import io.vblk.aio.testing.Components;
import io.vblk.tools.qmp.QmpClient;
import io.vblk.tools.serve.ServeConfig;
import io.vblk.tools.serve.ServeOptionParser;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * blockdev-mirror and job-complete under a real guest: a daemon started in this test serves a
 * 64 MiB image to a Debian guest under qemu-system-x86_64 (TCG, vhost-user-blk-pci,
 * scripts/vm/run-guest.sh with the guest job {@code migrate}: verified fio random-write passes,
 * crc32c, a new seed each pass, until the host writes VBLK-STOP into the disk's last 4 KiB). Once
 * the guest runs its passes, the test mirrors the disk to a second image over QMP, waits for
 * BLOCK_JOB_READY and one more pass, pivots with job-complete (the drained section: no guest
 * request between the last copy and the move), waits for two passes on the target, then stops the
 * guest through the target image. Every pass must end with 0 verify errors.
 */
@Tag("vm")
class RealVmMirrorTest {
    private static final long SIZE = 64L << 20;
    private static final Pattern ITER = Pattern.compile("VBLK-VM migrate-iter n=(\\d+) fio_rc=(\\d+) err=(\\S+)");

    @TempDir
    Path dir;

    @Test
    @Timeout(value = 25, unit = TimeUnit.MINUTES)
    void aGuestRunningFioVerifyIsMirroredAndPivotedWithoutAVerifyError() throws Exception {
        RealVmTest.setup();
        Path src = dir.resolve("src.img");
        Path dst = dir.resolve("dst.img");
        for (Path p : List.of(src, dst)) {
            VmHost.sparseFile(p, SIZE);
        }
        String sock = dir.resolve("vblk.sock").toString();
        ServeConfig cfg = ServeOptionParser.parse(List.of("driver=file,node-name=src,filename=" + src),
                List.of("iothread,id=io0"),
                List.of("type=vhost-user-blk,id=vda,node-name=src,writable=on,iothread=io0,addr.type=unix,addr.path=" + sock),
                null);
        VmHost vm = VmHost.serve(cfg, dir.resolve("qmp.sock"));
        StringBuilder out = new StringBuilder();
        CompletableFuture<String> host = new CompletableFuture<>();
        AtomicBoolean hostSide = new AtomicBoolean();
        try {
            Process p = VmHost.runGuest(List.of("--socket", sock, "--job", "migrate", "--fio-size", "32M", "--secs", "1200",
                    "--timeout", "1320", "--log", dir.resolve("guest.log").toString()), out, line -> {
                if (line.contains("VBLK-VM migrate-ready") && hostSide.compareAndSet(false, true)) {
                    Thread.ofPlatform().name("mirror-host").start(() -> {
                        try {
                            host.complete(mirrorAndPivot(vm.qmpSock, dst, out));
                        } catch (Throwable e) {
                            host.completeExceptionally(e);
                        }
                    });
                }
            });
            assertThat(host.get(60, TimeUnit.SECONDS)).as("the host side").isEqualTo("pivoted");
            String all = out.toString();
            Matcher it = ITER.matcher(all);
            int passes = 0;
            while (it.find()) {
                passes++;
                assertThat(it.group(2) + "/" + it.group(3)).as("fio rc / verify errors of pass " + it.group(1)).isEqualTo("0/0");
            }
            assertThat(passes).as("verified passes: one before the pivot at least, two after").isGreaterThanOrEqualTo(3);
            assertThat(all).contains("VBLK-VM step name=migrate rc=0", "VBLK-VM done rc=0");
            assertThat(p.exitValue()).as("guest rc; output:\n" + all).isZero();
            System.out.println("mirror + pivot under a TCG guest: " + passes + " verified fio passes, 0 verify errors");
        } finally {
            assertThat(vm.stop(Duration.ofSeconds(30))).isTrue();
        }
    }

    /**
     * What a management layer does, while the guest writes: blockdev-add the target, blockdev-mirror,
     * job-complete after ready and one more pass, then lets two passes run on the target and writes
     * the stop token into the target image (the disk the guest now reads).
     */
    private static String mirrorAndPivot(Path qmpSock, Path dst, StringBuilder out) throws Exception {
        try (QmpClient q = QmpClient.connect(qmpSock).negotiate()) {
            ok(q, "{\"execute\": \"blockdev-add\", \"arguments\": {\"driver\": \"file\", \"node-name\": \"dst\","
                    + " \"filename\": \"" + dst + "\"}}");
            ok(q, "{\"execute\": \"blockdev-mirror\", \"arguments\": {\"job-id\": \"m0\", \"device\": \"src\","
                    + " \"target\": \"dst\", \"sync\": \"full\"}}");
            q.awaitEvent("BLOCK_JOB_READY");
            awaitPasses(out, passes(out) + 1); // the guest dirties the source while the mirror is ready
            ok(q, "{\"execute\": \"job-complete\", \"arguments\": {\"id\": \"m0\"}}");
            JsonNode done = q.awaitEvent("BLOCK_JOB_COMPLETED").get("data");
            if (done.has("error")) {
                throw new AssertionError("mirror failed: " + done);
            }
            JsonNode exports = q.execute("query-block-exports", null).get("return");
            if (!exports.get(0).get("node-name").asText().equals("dst")) {
                throw new AssertionError("the export does not serve the target: " + exports);
            }
            awaitPasses(out, passes(out) + 2); // passes that wrote and verified on the target
            try (RandomAccessFile f = new RandomAccessFile(dst.toFile(), "rw")) {
                f.seek(SIZE - 4096);
                f.write("VBLK-STOP".getBytes(StandardCharsets.US_ASCII));
                f.getFD().sync();
            }
            return "pivoted";
        }
    }

    private static void ok(QmpClient q, String cmd) throws Exception {
        JsonNode r = q.raw(cmd);
        if (!r.has("return")) {
            throw new AssertionError(cmd + ": " + r);
        }
    }

    private static int passes(StringBuilder out) {
        synchronized (out) {
            Matcher m = ITER.matcher(out);
            int n = 0;
            while (m.find()) {
                n++;
            }
            return n;
        }
    }

    /** Waits (bounded: the guest's own timeout ends the output) for {@code n} passes in the output. */
    private static void awaitPasses(StringBuilder out, int n) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(15);
        synchronized (out) {
            while (passes(out) < n) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    throw new AssertionError("no " + n + " verified passes within 15 min:\n" + out);
                }
                out.wait(Math.max(1, left / 1_000_000)); // woken by each console line
            }
        }
    }
}
