package io.vblk.aio.stress;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Runs the jcstress tests of this package in a child JVM (jcstress forks its own) in its quick
 * "sanity" mode and fails on any forbidden outcome. The unguarded sleep/wake test must also show
 * the lost wake-up at least once, which proves the harness can see the race.
 */
@Tag("stress")
class JcstressRunTest {
    /** The sanity run (seconds when idle, minutes on a loaded machine): no forbidden outcome in any test. */
    @Test
    @Timeout(value = 5, unit = TimeUnit.MINUTES)
    void sanityModeHasNoForbiddenOutcome(@TempDir Path dir) throws Exception {
        String out = runJcstress(dir, "sanity", 4);
        assertThat(out).contains("0 failed");
    }

    /** The real run (minutes): also shows the unguarded race, proving the harness can see it. */
    @Test
    @Timeout(value = 15, unit = TimeUnit.MINUTES)
    void quickModeHasNoForbiddenOutcomeAndShowsTheUnguardedRace(@TempDir Path dir) throws Exception {
        String out = runJcstress(dir, "quick", 14);
        assertThat(out).contains("the lost wake-up of seed 001");
    }

    private static String runJcstress(Path dir, String mode, int minutes) throws Exception {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<String> cmd = new ArrayList<>(List.of(java, "--enable-native-access=ALL-UNNAMED",
                "-cp", System.getProperty("java.class.path"), "org.openjdk.jcstress.Main",
                "-t", "io.vblk.aio.stress", "-m", mode, "-r", dir.resolve("results").toString()));
        Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true)
                .redirectOutput(dir.resolve("out.txt").toFile()).start();
        boolean finished = p.waitFor(minutes, TimeUnit.MINUTES);
        if (!finished) {
            p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
        }
        String out = Files.readString(dir.resolve("out.txt"));
        System.out.println(out.lines().filter(l -> l.contains("Results:") || l.contains("[FAILED]")
                || l.contains("[ERROR]") || l.contains("seed 001")).reduce("", (x, y) -> x + y + "\n"));
        assertThat(finished).as("jcstress finished in time").isTrue();
        assertThat(out).doesNotContain("[FAILED]").doesNotContain("[ERROR]");
        assertThat(p.exitValue()).as("jcstress exit code; output:\n" + out).isZero();
        return out;
    }
}
