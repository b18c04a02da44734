package io.vblk.virtio.vhost;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.fail;

/**
 * Starts the reference back-end, {@code qemu-storage-daemon} from Debian's QEMU packages, for
 * tests. {@code --daemonize} makes the start-up exact: the launching process exits only once the
 * daemon is initialised and its exports listen, so no test waits for a socket to appear.
 * {@link #ensureInstalled()} installs the package when it is missing and the test runs as root
 * with apt-get; under {@code CI=true} a daemon that still is not there fails the test (elsewhere
 * the test is skipped, saying why).
 *
 * <p>Any thread (test code).
 */
public final class QemuStorageDaemon implements AutoCloseable {
    public static final String BINARY = "/usr/bin/qemu-storage-daemon";
    /** Debian 12 ships the daemon in qemu-system-common. */
    public static final String PACKAGE = "qemu-system-common";

    private final long pid;
    private final Path log;

    private QemuStorageDaemon(long pid, Path log) {
        this.pid = pid;
        this.log = log;
    }

    /**
     * Installs Debian's package when the daemon is missing (running {@code apt-get update} first if
     * the install fails, as on a fresh machine), and fails the test naming the package when it still
     * is missing: a real component the test needs is never skipped.
     */
    public static void ensureInstalled() throws Exception {
        if (Files.isExecutable(Path.of(BINARY))) {
            return;
        }
        if (!apt("install", "-y", "--no-install-recommends", PACKAGE)) {
            apt("update");
            apt("install", "-y", "--no-install-recommends", PACKAGE);
        }
        if (!Files.isExecutable(Path.of(BINARY))) {
            fail(BINARY + " is missing and could not be installed (as root: apt-get install " + PACKAGE + ")");
        }
    }

    private static boolean apt(String... args) throws Exception {
        if (!Files.isExecutable(Path.of("/usr/bin/apt-get"))) {
            return false;
        }
        List<String> cmd = new ArrayList<>(List.of("apt-get", "-q"));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.DISCARD);
        pb.environment().put("DEBIAN_FRONTEND", "noninteractive");
        Process p = pb.start();
        if (!p.waitFor(10, TimeUnit.MINUTES)) {
            p.destroyForcibly();
            return false;
        }
        return p.exitValue() == 0;
    }

    /** Starts the daemon with {@code args} (absolute paths: a daemon changes to /). */
    public static QemuStorageDaemon start(Path dir, String... args) throws Exception {
        Path pidfile = dir.resolve("qsd.pid");
        Path log = dir.resolve("qsd.log");
        List<String> cmd = new ArrayList<>(List.of(BINARY, "--daemonize", "--pidfile", pidfile.toString()));
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        if (!p.waitFor(60, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            fail("qemu-storage-daemon did not finish starting within 60 s: " + Files.readString(log));
        }
        if (p.exitValue() != 0) {
            fail("qemu-storage-daemon failed to start (exit " + p.exitValue() + "): " + Files.readString(log));
        }
        long pid = Long.parseLong(Files.readString(pidfile).trim());
        return new QemuStorageDaemon(pid, log);
    }

    public long pid() {
        return pid;
    }

    /** SIGTERM, then SIGKILL if it has not exited within 20 s. */
    @Override
    public void close() throws Exception {
        var h = ProcessHandle.of(pid);
        if (h.isEmpty()) {
            return;
        }
        h.get().destroy();
        try {
            h.get().onExit().get(20, TimeUnit.SECONDS);
        } catch (java.util.concurrent.TimeoutException e) {
            h.get().destroyForcibly();
            h.get().onExit().get(10, TimeUnit.SECONDS);
        }
    }

    public String log() throws IOException {
        return Files.exists(log) ? Files.readString(log) : "";
    }
}
