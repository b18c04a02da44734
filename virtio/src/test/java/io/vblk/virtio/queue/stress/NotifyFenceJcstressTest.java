package io.vblk.virtio.queue.stress;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Runs {@link NotifyFenceStress} (no lost kick, no lost interrupt; EVENT_IDX and flags) in a
 * child JVM under jcstress with a small budget (one fork, one 1 s iteration per test and
 * compilation mode, one JVM configuration; about three minutes on this loaded machine) and
 * fails on any forbidden outcome. With the full fence in SplitQueue.enableNotification or
 * SplitQueue.needsNotify removed, this run reports the forbidden outcome.
 */
@Tag("stress")
class NotifyFenceJcstressTest {
    @Test
    @Timeout(value = 8, unit = TimeUnit.MINUTES)
    void noLostKickAndNoLostInterrupt(@TempDir Path dir) throws Exception {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<String> cmd = List.of(java, "--enable-native-access=ALL-UNNAMED",
                "-cp", System.getProperty("java.class.path"), "org.openjdk.jcstress.Main",
                "-t", NotifyFenceStress.class.getName().replace(".", "\\.") + ".*",
                "-f", "1", "-iters", "1", "-time", "1000", "-sc", "false",
                "-jvmArgs", "--enable-native-access=ALL-UNNAMED", "-r", dir.resolve("results").toString());
        Process p = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true)
                .redirectOutput(dir.resolve("out.txt").toFile()).start();
        boolean finished = p.waitFor(7, TimeUnit.MINUTES);
        if (!finished) {
            p.destroyForcibly().waitFor(10, TimeUnit.SECONDS);
        }
        String out = Files.readString(dir.resolve("out.txt"));
        System.out.println(out.lines().filter(l -> l.contains("Results:") || l.contains("[FAILED]")
                || l.contains("[ERROR]") || l.contains("[OK]")).reduce("", (x, y) -> x + y + "\n"));
        assertThat(finished).as("jcstress finished in time").isTrue();
        assertThat(out).as(out).doesNotContain("[FAILED]").doesNotContain("[ERROR]");
        // The last progress line: every planned run of the four tests passed.
        Matcher m = Pattern.compile("Results: (\\d+) planned; (\\d+) passed, 0 failed").matcher(out);
        String planned = null;
        String passed = null;
        while (m.find()) {
            planned = m.group(1);
            passed = m.group(2);
        }
        assertThat(planned).as("a jcstress progress line; output:\n" + out).isNotNull();
        assertThat(passed).as("runs passed of those planned").isEqualTo(planned);
        assertThat(Integer.parseInt(planned)).as("runs planned (four tests)").isGreaterThanOrEqualTo(4);
        assertThat(p.exitValue()).as("jcstress exit code; output:\n" + out).isZero();
    }
}
