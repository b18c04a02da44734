package io.vblk.tools.soak;

import io.vblk.tools.metrics.ProcessSample;
import io.vblk.tools.Main;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/** A few seconds of {@code vblk bench --soak} against a real {@code vblk serve} child process. */
@Timeout(value = 3, unit = TimeUnit.MINUTES)
class SoakRunTest {
    @TempDir
    Path dir;

    @Test
    void shortSoakReconnectsVerifiesAndReportsTheServersFootprint() {
        PrintStream old = System.out;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        int code;
        System.setOut(new PrintStream(buf, true, StandardCharsets.UTF_8));
        try {
            code = Main.run("bench", "--soak", "8s", "--soak-interval", "1s", "--soak-reconnect", "2s", "--queues", "2",
                    "--qd", "8", "--size", "32m", "--soak-dir", dir.toString());
        } finally {
            System.setOut(old);
        }
        String out = buf.toString(StandardCharsets.UTF_8);
        assertThat(code).as(out).isZero();
        assertThat(out).containsPattern("soak: vblk serve pid \\d+")
                .containsPattern("soak t=\\d+s cycles=\\d+ requests=\\d+ rss_kb=\\d+ fds=\\d+ threads=\\d+")
                .containsPattern("soak summary: rss_kb first=\\d+ warm=\\d+ last=\\d+ max=\\d+ \\| fds first=")
                .containsPattern("soak result: cycles=([2-9]|\\d\\d+) requests=\\d+ server_exit=0 verify=ok flat=yes");
        long lines = out.lines().filter(l -> l.startsWith("soak t=")).count();
        assertThat(lines).as("a footprint line per interval").isGreaterThanOrEqualTo(3);
    }

    @Test
    void footprintIsFlatOnlyWhenNothingGrows() {
        Footprint f = new Footprint();
        f.add(new ProcessSample(100_000, 40, 20), false);
        assertThat(f.flat()).as("no reading after the warm-up yet").isFalse();
        f.add(new ProcessSample(150_000, 45, 22), true);
        f.add(new ProcessSample(160_000, 50, 22), true);
        assertThat(f.flat()).isTrue();
        f.add(new ProcessSample(160_000, 45 + Footprint.FD_SLACK + 1, 22), true);
        assertThat(f.flat()).as("fds leak").isFalse();
        f.add(new ProcessSample(150_000 * 2, 45, 22), true);
        assertThat(f.flat()).as("rss grows").isFalse();
        f.add(new ProcessSample(150_000, 45, 22 + Footprint.THREAD_SLACK + 1), true);
        assertThat(f.flat()).as("threads leak").isFalse();
        f.add(new ProcessSample(150_000, 45, 22), true);
        assertThat(f.flat()).isTrue();
        assertThat(f.summary()).contains("rss_kb first=100000 warm=150000 last=150000 max=300000");
    }
}
