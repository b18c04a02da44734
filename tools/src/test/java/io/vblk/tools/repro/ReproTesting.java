package io.vblk.tools.repro;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/** Runs a reproducer in a thread of its own with an outer bound, and checks the result contract. */
public final class ReproTesting {
    private ReproTesting() {
    }

    /** Options for tests: enough iterations to show the hazard, bounded well inside the test timeout. */
    public static ReproOptions options(int iterations, long seed) {
        return new ReproOptions(iterations, Duration.ofSeconds(40), Duration.ofSeconds(1), seed);
    }

    public static ReproResult run(Repro repro, boolean guardOn, ReproOptions options) throws Exception {
        CompletableFuture<ReproResult> f = new CompletableFuture<>();
        Thread t = new Thread(() -> {
            try {
                f.complete(repro.run(guardOn, options));
            } catch (Throwable e) {
                f.completeExceptionally(e);
            }
        }, "repro-" + repro.hazard());
        t.setDaemon(true);
        t.start();
        long bound = options.timeLimit().plus(options.hangAfter().multipliedBy(5)).toMillis();
        ReproResult r = f.get(bound, TimeUnit.MILLISECONDS);
        System.out.println(r.line());
        assertThat(r.line()).startsWith("hazard=" + repro.hazard() + " guard=" + (guardOn ? "on" : "off") + " result=");
        return r;
    }
}
