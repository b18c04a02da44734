package io.vblk.tools.repro;

import io.vblk.drivers.rbd.CephCluster;
import io.vblk.drivers.rbd.CephClusterFixture;
import io.vblk.drivers.rbd.RbdDriver;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import picocli.CommandLine;

import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Any thread (test code). Seed 002 on the rbd driver ({@code vblk repro cross-thread-completion
 * --mode rbd}) against a real single-node cluster ({@link CephCluster}): with the guard off, librbd's
 * completions are processed on the librbd thread and the repro sees it; with the guard on, 10000
 * reads at 32 in flight all complete once, on the IoThread, and the channel tears down clean.
 */
@Tag("real")
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class CrossThreadCompletionRbdReproTest extends CephClusterFixture {
    @BeforeAll
    static void createImages() throws Exception {
        cluster.rbd("create", "--size", "8M", CephCluster.POOL + "/repro");
        // Written once so reads reach objects that exist (not only the OSD's "no such object" path).
        Path data = dir.resolve("data.raw");
        java.nio.file.Files.write(data, new byte[8 << 20]);
        cluster.rbd("import", "--no-progress", data.toString(), CephCluster.POOL + "/repro-data");
    }

    private static CrossThreadCompletionRbdRepro repro(String image) {
        return new CrossThreadCompletionRbdRepro(new RbdDriver.Options(CephCluster.POOL, image, null, null,
                cluster.conf().toString(), null, null, true));
    }

    /** Generous bounds: a loaded machine slows the cluster, never changes the verdict. */
    private static ReproOptions options(int iterations) {
        return new ReproOptions(iterations, Duration.ofSeconds(150), Duration.ofSeconds(10), 7);
    }

    @Test
    void theGuardOffProcessesLibrbdCompletionsOnTheLibrbdThreadAndTheReproSeesIt() throws Exception {
        ReproResult r = ReproTesting.run(repro("repro-data"), false, options(2000));
        assertThat(r.outcome()).as(r.line()).isEqualTo(ReproResult.Outcome.REPRODUCED);
        assertThat(r.expected()).isTrue();
        assertThat(r.extra().get("engine")).isEqualTo("rbd");
        assertThat(Long.parseLong(r.extra().get("wrong_thread_completions"))).as(r.line()).isPositive();
        assertThat(r.detail()).contains("librbd thread");
    }

    @Test
    void theGuardOnHandsEveryCompletionToTheIoThreadUnderLoad() throws Exception {
        ReproResult r = ReproTesting.run(repro("repro-data"), true, options(10_000));
        assertThat(r.outcome()).as(r.line()).isEqualTo(ReproResult.Outcome.HELD);
        assertThat(r.iterations()).isGreaterThanOrEqualTo(10_000);
        assertThat(r.extra().get("wrong_thread_completions")).isEqualTo("0");
        assertThat(r.extra().get("double_completions")).isEqualTo("0");
        assertThat(r.extra().get("stalled")).isEqualTo("false");
        assertThat(r.extra().get("channel_in_flight_end")).isEqualTo("0");
        assertThat(r.extra().get("teardown")).isEqualTo("released");
    }

    @Test
    void theCommandLineRunsTheRbdModeAndRefusesItWithoutAnImage() throws Exception {
        String[] common = {"cross-thread-completion", "--mode", "rbd", "--conf", cluster.conf().toString(),
                "--iterations", "500", "--time-limit", "60s", "--hang-after", "10s"};
        CommandLine cl = new CommandLine(new ReproCommand());
        String[] off = concat(common, "--image", CephCluster.POOL + "/repro", "--guard", "off");
        assertThat(cl.execute(off)).as("exit status: reproduced with the guard off").isZero();
        String[] on = concat(common, "--image", CephCluster.POOL + "/repro", "--guard", "on");
        assertThat(new CommandLine(new ReproCommand()).execute(on)).as("exit status: held with the guard on").isZero();
        assertThat(new CommandLine(new ReproCommand()).execute(common)).as("no --image").isEqualTo(2);
        assertThat(new CommandLine(new ReproCommand()).execute(concat(common, "--image", CephCluster.POOL + "/nope")))
                .as("a missing image: inconclusive").isEqualTo(1);
    }

    private static String[] concat(String[] a, String... b) {
        String[] r = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }
}
