package io.vblk.tools;

import io.vblk.tools.version.VblkVersion;
import io.vblk.tools.repro.Repro;
import io.vblk.tools.repro.ReproOptions;
import io.vblk.tools.repro.ReproResult;
import io.vblk.tools.repro.Repros;
import picocli.CommandLine.Command;

import java.time.Duration;
import java.util.concurrent.Callable;

/**
 * Home thread: the CLI's main thread (no context's home thread).
 *
 * <p>{@code vblk demo}: a quick tour on a fresh machine — every seed hazard reproduced with its guard
 * off and held with it on, with short bounds.
 */
@Command(name = "demo", mixinStandardHelpOptions = true, versionProvider = VblkVersion.class,
        description = "Run every hazard reproducer with its guard off and on (short bounds).")
public final class DemoCommand implements Callable<Integer> {
    @Override
    public Integer call() throws Exception {
        ReproOptions opts = new ReproOptions(2000, Duration.ofSeconds(20), Duration.ofSeconds(1), 1);
        boolean ok = true;
        for (Repro r : Repros.all()) {
            System.out.println("# " + r.hazard() + ": " + r.description());
            for (boolean guard : new boolean[] {false, true}) {
                ReproResult res = r.run(guard, opts);
                System.out.println(res.line());
                ok &= res.expected();
            }
        }
        System.out.println(ok ? "demo: every hazard reproduced with its guard off and held with it on"
                : "demo: some result was not the expected one");
        return ok ? 0 : 1;
    }
}
