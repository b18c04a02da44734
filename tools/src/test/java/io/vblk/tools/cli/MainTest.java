package io.vblk.tools.cli;

import io.vblk.tools.Main;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;

import static org.assertj.core.api.Assertions.assertThat;

class MainTest {
    @Test
    void unknownHazardIsNamed() {
        String err = captureErr(() -> assertThat(Main.run("repro", "no-such-thing")).isEqualTo(2));
        assertThat(err).contains("unknown hazard 'no-such-thing'").contains("lost-wakeup");
    }

    @Test
    void badGuardValueIsNamed() {
        String err = captureErr(() -> assertThat(Main.run("repro", "lost-wakeup", "--guard=maybe")).isEqualTo(2));
        assertThat(err).contains("--guard accepts on or off");
    }

    @Test
    void badDurationIsNamed() {
        String err = captureErr(() -> assertThat(Main.run("repro", "lost-wakeup", "--time-limit", "soon")).isEqualTo(2));
        assertThat(err).contains("--time-limit accepts a duration");
    }

    @Test
    void everyCommandPrintsTheVersion() {
        for (String[] args : new String[][] {{"--version"}, {"serve", "--version"}, {"serve", "-V"}, {"bench", "--version"},
                {"bench", "-V"}, {"repro", "--version"}, {"demo", "-V"}}) {
            String out = captureOut(() -> assertThat(Main.run(args)).isZero());
            assertThat(out).as(String.join(" ", args)).matches("vblk \\d+\\.\\d+\\.\\d+\\S*\\R");
        }
    }

    @Test
    void aBadBenchDriverIsOneLine() {
        String err = captureErr(() -> assertThat(Main.run("bench", "--driver", "bogus:x", "--requests", "1")).isEqualTo(2));
        assertThat(err.lines().toList()).hasSize(1);
        assertThat(err).startsWith("vblk bench: --driver: ").contains("unknown driver 'bogus'").contains("vblk bench --help");
    }

    private static String captureOut(Runnable r) {
        PrintStream old = System.out;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        System.setOut(new PrintStream(buf, true));
        try {
            r.run();
        } finally {
            System.setOut(old);
        }
        return buf.toString();
    }

    private static String captureErr(Runnable r) {
        PrintStream old = System.err;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        System.setErr(new PrintStream(buf, true));
        try {
            r.run();
        } finally {
            System.setErr(old);
        }
        return buf.toString();
    }
}
