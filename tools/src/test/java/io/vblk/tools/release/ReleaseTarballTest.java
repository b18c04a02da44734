package io.vblk.tools.release;

import io.vblk.guest.GuestBlkDriver;
import io.vblk.guest.Workload;
import io.vblk.guest.WorkloadResult;
import io.vblk.guest.WorkloadRun;
import io.vblk.guest.vhost.VhostUserTransport;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The release artifact: scripts/release.sh builds vblk-VERSION-linux-x86_64.tar.gz; it is unpacked
 * into an empty directory and run, from another empty directory, with a PATH whose {@code java} is
 * JDK 17 and no JAVA_HOME — the launcher must use the jlink'd runtime inside. It serves a disk to
 * vblk's vhost-user front end (a verified random read/write workload) on a socket path, and again
 * socket-activated the way systemd does it (systemd-socket-activate passes the listening socket as
 * fd 3 with LISTEN_FDS=1; the export takes it with {@code addr.type=fd,addr.str=3}).
 */
@Tag("slow")
@Tag("real")
class ReleaseTarballTest {
    private static final Path ROOT = Path.of(System.getProperty("user.dir")).getParent();
    private static final String JDK17_BIN = "/usr/lib/jvm/java-17-openjdk-amd64/bin";
    private static final Duration T = Duration.ofSeconds(60);

    @TempDir
    Path dir;

    @Test
    @Timeout(value = 20, unit = TimeUnit.MINUTES)
    void theTarballRunsWithoutAJdkAndServesADiskAlsoSocketActivated() throws Exception {
        Path out = dir.resolve("out");
        String built = run(List.of(ROOT.resolve("scripts/release.sh").toString(), "--out", out.toString()), ROOT, Map.of(), 15);
        Path tarball = Path.of(built.lines().reduce("", (a, b) -> b).trim());
        assertThat(tarball.getFileName().toString()).matches("vblk-.+-linux-x86_64\\.tar\\.gz");

        Path install = Files.createDirectory(dir.resolve("install"));
        run(List.of("tar", "-xzf", tarball.toString(), "-C", install.toString()), install, Map.of(), 2);
        Path home;
        try (Stream<Path> s = Files.list(install)) {
            home = s.findFirst().orElseThrow();
        }
        Path launcher = home.resolve("bin/vblk");
        assertThat(launcher).isExecutable();
        assertThat(home.resolve("runtime/bin/java")).isExecutable();
        assertThat(home.resolve("dist/systemd/vblk.service")).content().contains("Restart=always");
        assertThat(home.resolve("dist/systemd/vblk-activated.socket")).content().contains("ListenStream=");
        assertThat(home.resolve("dist/systemd/vblk-activated.service")).content().contains("addr.type=fd,addr.str=3");

        Map<String, String> jdk17 = Map.of("PATH", JDK17_BIN + ":/usr/bin:/bin");
        Path cwd = Files.createDirectory(dir.resolve("elsewhere"));
        assertThat(run(List.of("sh", "-c", "command -v java; java -version"), cwd, jdk17, 1)).as("PATH's default java").contains("version \"17");

        Path img = dir.resolve("disk.img");
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(32L << 20);
        }
        String blockdev = "driver=file,node-name=disk0,filename=" + img;
        String sock = dir.resolve("vblk.sock").toString();
        serveAndUse(List.of(launcher.toString(), "serve", "--blockdev", blockdev, "--export",
                "type=vhost-user-blk,id=vda,node-name=disk0,writable=on,addr.type=unix,addr.path=" + sock), cwd, jdk17, sock, true);

        String activated = dir.resolve("activated.sock").toString();
        serveAndUse(List.of("systemd-socket-activate", "-E", "PATH", "-l", activated, launcher.toString(), "serve", "--blockdev", blockdev,
                "--export", "type=vhost-user-blk,id=vda,node-name=disk0,writable=on,addr.type=fd,addr.str=3"), cwd, jdk17,
                activated, false);
    }

    /** Starts the daemon, waits for it (its ready line, or the socket systemd-socket-activate made), runs a verified workload, stops it. */
    private static void serveAndUse(List<String> cmd, Path cwd, Map<String, String> env, String sock, boolean waitReady)
            throws Exception {
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(cwd.toFile()).redirectErrorStream(true);
        pb.environment().keySet().removeIf(k -> k.startsWith("JAVA"));
        pb.environment().putAll(env);
        Process p = pb.start();
        List<String> lines = new ArrayList<>();
        BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
        Thread reader = Thread.ofVirtual().start(() -> {
            try {
                r.lines().forEach(l -> {
                    synchronized (lines) {
                        lines.add(l);
                        lines.notifyAll();
                    }
                });
            } catch (java.io.UncheckedIOException closed) {
                // The JDK closes a dead process's pipe under a blocked reader ("Stream closed"): the end.
            }
        });
        try {
            long end = System.nanoTime() + T.toNanos();
            synchronized (lines) {
                while (waitReady ? lines.stream().noneMatch(l -> l.startsWith("vblk serve: ready"))
                        : !Files.exists(Path.of(sock))) {
                    long left = end - System.nanoTime();
                    assertThat(left).as("daemon ready within %s; output: %s", T, lines).isPositive();
                    assertThat(p.isAlive()).as("daemon alive; output: %s", lines).isTrue();
                    lines.wait(Math.max(1, Math.min(TimeUnit.NANOSECONDS.toMillis(left), 100)));
                }
            }
            try (VhostUserTransport t = VhostUserTransport.connect(sock, T);
                 GuestBlkDriver g = GuestBlkDriver.attach(t, GuestBlkDriver.Options.defaults().withSlots(16))) {
                assertThat(g.config().capacitySectors()).isEqualTo((32L << 20) / 512);
                WorkloadResult res = WorkloadRun.start(g, Workload.of(Workload.Pattern.RANDRW).withQueueDepth(8)
                        .withRequests(1000).withVerify(true).withSeed(11)).await(T);
                assertThat(res.error()).isNull();
                assertThat(res.total().verifyFailures).isZero();
                assertThat(res.total().ioErrors).isZero();
                assertThat(res.total().verifiedSectors).isPositive();
                assertThat(res.total().completed).isGreaterThanOrEqualTo(1000); // verify reads count too
            }
        } finally {
            p.destroy(); // SIGTERM: the daemon shuts down cleanly
            if (!p.waitFor(30, TimeUnit.SECONDS)) {
                p.descendants().forEach(ProcessHandle::destroyForcibly);
                p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
            }
            reader.join(Duration.ofSeconds(10));
        }
        synchronized (lines) {
            // 0, not 143: the daemon's SIGTERM handler ran its orderly shutdown (a JVM killed by the signal exits 143).
            assertThat(p.exitValue()).as("exit status after SIGTERM; output: %s", lines).isZero();
        }
    }

    private static String run(List<String> cmd, Path cwd, Map<String, String> env, int minutes) throws Exception {
        Path log = Files.createTempFile("vblk-release", ".log");
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(cwd.toFile()).redirectErrorStream(true).redirectOutput(log.toFile());
        if (!env.isEmpty()) {
            pb.environment().keySet().removeIf(k -> k.startsWith("JAVA"));
            pb.environment().putAll(env);
        }
        Process p = pb.start();
        boolean done = p.waitFor(minutes, TimeUnit.MINUTES);
        if (!done) {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly().waitFor(30, TimeUnit.SECONDS);
        }
        String text = Files.readString(log);
        Files.delete(log);
        assertThat(done).as(cmd + " finished within " + minutes + " min; output:\n" + text).isTrue();
        assertThat(p.exitValue()).as(cmd + " exit status; output:\n" + text).isZero();
        return text;
    }
}
