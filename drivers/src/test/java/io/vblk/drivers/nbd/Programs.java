package io.vblk.drivers.nbd;

import io.vblk.aio.testing.Components;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.fail;

/** Any thread (the test's). Runs a real program to its end within a bound and returns its output. */
public final class Programs {
    public record Result(int exit, String output) {
    }

    private Programs() {
    }

    public static Result run(Components.Component c, String... args) {
        List<String> cmd = new ArrayList<>();
        cmd.add(Components.require(c).toString());
        cmd.addAll(List.of(args));
        try {
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
            p.getOutputStream().close();
            byte[] out = p.getInputStream().readAllBytes();
            if (!p.waitFor(120, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                fail(String.join(" ", cmd) + " did not end within 120 s");
            }
            return new Result(p.exitValue(), new String(out, StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new IllegalStateException(String.join(" ", cmd) + ": " + e, e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException(e);
        }
    }

    /** Runs and fails the test unless it exits 0; returns the output. */
    public static String ok(Components.Component c, String... args) {
        Result r = run(c, args);
        if (r.exit() != 0) {
            fail(c.program() + " " + String.join(" ", args) + " exited " + r.exit() + ":\n" + r.output());
        }
        return r.output();
    }
}
