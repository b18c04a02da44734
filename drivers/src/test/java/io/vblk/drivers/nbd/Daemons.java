package io.vblk.drivers.nbd;

import io.vblk.aio.testing.Components;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.fail;

/**
 * Any thread (the test's). A real NBD server (nbdkit, qemu-nbd) started in the background the way
 * both document: the command returns once the server listens (nbdkit forks after binding; qemu-nbd
 * with {@code --fork}), so no waiting for a socket file is needed; the pid file names the daemon.
 */
public final class Daemons {
    public record Daemon(long pid) implements AutoCloseable {
        @Override
        public void close() {
            ProcessHandle.of(pid).ifPresent(p -> {
                p.destroy();
                p.onExit().orTimeout(30, java.util.concurrent.TimeUnit.SECONDS).join();
            });
        }
    }

    private Daemons() {
    }

    /** Runs {@code args} (which must make the program write {@code pidFile} and fork), returns the daemon. */
    static Daemon start(Components.Component c, Path pidFile, String... args) {
        Programs.ok(c, args);
        try {
            return new Daemon(Long.parseLong(Files.readString(pidFile).trim()));
        } catch (IOException | NumberFormatException e) {
            return fail(c.program() + " wrote no usable pid file " + pidFile + ": " + e);
        }
    }

    /**
     * {@code nbdkit -U SOCKET [-r] PLUGIN ARGS... --run 'echo ready; exec cat'}: nbdkit runs the
     * command once it listens, and stops when the command ends — here when the test closes its
     * stdin. Returns once "ready" was read.
     */
    public static AutoCloseable nbdkit(String socket, boolean readOnly, String... pluginArgs) {
        java.util.List<String> a = new java.util.ArrayList<>(java.util.List.of(
                Components.require(Components.NBDKIT).toString(), "-U", socket));
        if (readOnly) {
            a.add("-r");
        }
        a.addAll(java.util.List.of(pluginArgs));
        a.addAll(java.util.List.of("--run", "echo ready; exec cat >/dev/null"));
        try {
            Process p = new ProcessBuilder(a).redirectError(ProcessBuilder.Redirect.INHERIT).start();
            java.io.BufferedReader r = new java.io.BufferedReader(new java.io.InputStreamReader(p.getInputStream(),
                    java.nio.charset.StandardCharsets.UTF_8));
            String line = r.readLine();
            if (!"ready".equals(line)) {
                p.destroyForcibly();
                fail(String.join(" ", a) + " did not start (said " + line + ")");
            }
            return () -> {
                p.getOutputStream().close();
                if (!p.waitFor(30, java.util.concurrent.TimeUnit.SECONDS)) {
                    p.destroyForcibly();
                    fail("nbdkit did not stop within 30 s of its --run command ending");
                }
            };
        } catch (IOException e) {
            return fail(String.join(" ", a) + ": " + e);
        }
    }

    /** {@code qemu-nbd --fork --persistent -k SOCKET -f raw -x NAME --discard=unmap [-r] IMAGE}. */
    public static Daemon qemuNbd(Path dir, String socket, String export, String image, boolean readOnly) {
        Path pid = dir.resolve(Path.of(socket).getFileName() + ".pid");
        java.util.List<String> a = new java.util.ArrayList<>(java.util.List.of("--fork", "--persistent", "-e", "8",
                "--pid-file", pid.toString(), "-k", socket, "-f", "raw", "-x", export, "--discard=unmap",
                "--cache=writeback"));
        if (readOnly) {
            a.add("-r");
        }
        a.add(image);
        return start(Components.QEMU_NBD, pid, a.toArray(String[]::new));
    }
}
