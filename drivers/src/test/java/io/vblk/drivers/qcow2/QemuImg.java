package io.vblk.drivers.qcow2;

import io.vblk.aio.testing.Components;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Any thread (stateless). Runs the real qemu-img and qemu-io (Debian qemu-utils) for the qcow2
 * tests; a missing program fails the test naming the package. Shared through the drivers test-jar.
 */
public final class QemuImg {
    /** What a run printed and how it ended. */
    public record Result(int exit, String out) {
    }

    private QemuImg() {
    }

    /** Runs {@code qemu-img args...}, bounded to 60 s. */
    public static Result img(String... args) {
        return run(Components.require(Components.QEMU_IMG), args);
    }

    /** Runs {@code qemu-io args...}, bounded to 60 s. */
    public static Result io(String... args) {
        return run(Components.require(Components.QEMU_IO), args);
    }

    /** Runs qemu-img and fails unless it exits 0. */
    public static String imgOk(String... args) {
        Result r = img(args);
        if (r.exit() != 0) {
            throw new AssertionError("qemu-img " + String.join(" ", args) + " exited " + r.exit() + ":\n" + r.out());
        }
        return r.out();
    }

    /** Runs qemu-io and fails unless it exits 0 and reports no failed command. */
    public static String ioOk(String... args) {
        Result r = io(args);
        if (r.exit() != 0 || r.out().contains("failed")) {
            throw new AssertionError("qemu-io " + String.join(" ", args) + " exited " + r.exit() + ":\n" + r.out());
        }
        return r.out();
    }

    /** {@code qemu-img create -f qcow2 [-o opts] path size}. */
    public static Path create(Path path, long size, String options) {
        List<String> a = new ArrayList<>(List.of("create", "-q", "-f", "qcow2"));
        if (options != null) {
            a.add("-o");
            a.add(options);
        }
        a.add(path.toString());
        a.add(Long.toString(size));
        imgOk(a.toArray(String[]::new));
        return path;
    }

    private static Result run(Path program, String... args) {
        List<String> cmd = new ArrayList<>();
        cmd.add(program.toString());
        cmd.addAll(List.of(args));
        try {
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
            p.getOutputStream().close();
            byte[] out = p.getInputStream().readAllBytes(); // ends when the program exits
            if (!p.waitFor(60, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new AssertionError(String.join(" ", cmd) + " did not finish within 60 s");
            }
            return new Result(p.exitValue(), new String(out, StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new AssertionError("cannot run " + String.join(" ", cmd) + ": " + e, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted running " + String.join(" ", cmd), e);
        }
    }
}
