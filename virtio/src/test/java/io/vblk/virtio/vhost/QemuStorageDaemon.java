package io.vblk.virtio.vhost;

import io.vblk.aio.testing.Components;

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
 * {@link #ensureInstalled()} finds it through {@link Components} and fails the test naming the
 * package when it is missing (tests never install it: scripts/install-test-deps.sh does).
 *
 * <p>Any thread (test code).
 */
public final class QemuStorageDaemon implements AutoCloseable {
    private final long pid;
    private final Path log;

    private QemuStorageDaemon(long pid, Path log) {
        this.pid = pid;
        this.log = log;
    }

    /** Fails the test naming Debian's package when the daemon is not installed. */
    public static void ensureInstalled() {
        Components.require(Components.QEMU_STORAGE_DAEMON);
    }

    /** Starts the daemon with {@code args} (absolute paths: a daemon changes to /). */
    public static QemuStorageDaemon start(Path dir, String... args) throws Exception {
        Path pidfile = dir.resolve("qsd.pid");
        Path log = dir.resolve("qsd.log");
        String binary = Components.require(Components.QEMU_STORAGE_DAEMON).toString();
        List<String> cmd = new ArrayList<>(List.of(binary, "--daemonize", "--pidfile", pidfile.toString()));
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
