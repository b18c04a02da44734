package io.vblk.tools.repro;

import io.vblk.aio.engine.AioMode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/** Seeds 001 and 002: shown with the guard off (detected, bounded), absent with it on. */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class SeedHazardReproTest {

    @Test
    void lostWakeupIsReproducedWithTheGuardOff() throws Exception {
        ReproResult r = ReproTesting.run(new LostWakeupRepro(), false, ReproTesting.options(3000, 11));
        assertThat(r.outcome()).isEqualTo(ReproResult.Outcome.REPRODUCED);
        assertThat(r.expected()).isTrue();
        assertThat(r.detail()).contains("slept through");
    }

    @Test
    void lostWakeupIsHeldWithTheGuardOn() throws Exception {
        ReproResult r = ReproTesting.run(new LostWakeupRepro(), true, ReproTesting.options(300, 11));
        assertThat(r.outcome()).isEqualTo(ReproResult.Outcome.HELD);
        assertThat(r.iterations()).isEqualTo(300);
        // The guard was exercised: some stops arrived while the task was between check and sleep.
        assertThat(Long.parseLong(r.extra().get("wakes_before_sleep"))).isPositive();
    }

    @Test
    void crossThreadCompletionIsReproducedWithTheGuardOff() throws Exception {
        ReproResult r = ReproTesting.run(new CrossThreadCompletionRepro(), false,
                ReproTesting.options(2_000_000, 1));
        assertThat(r.outcome()).isEqualTo(ReproResult.Outcome.REPRODUCED);
        assertThat(r.expected()).isTrue();
        assertThat(r.extra().get("engine")).isEqualTo("linux-aio");
        // Both threads walked the same completions: a request handed back twice (seen by the repro's
        // callback, or refused by the engine's own state check), or the in-flight count went negative.
        long collisions = Long.parseLong(r.extra().get("double_completions"))
                + Long.parseLong(r.extra().get("engine_errors"))
                + (Long.parseLong(r.extra().get("min_in_flight")) < 0 ? 1 : 0);
        assertThat(collisions).isPositive();
        assertThat(r.extra().get("handed_over")).isEqualTo("0");
    }

    @Test
    void crossThreadCompletionIsReproducedOnIoUringWithTheGuardOff() throws Exception {
        ReproResult r = ReproTesting.run(new CrossThreadCompletionRepro(AioMode.IO_URING), false,
                ReproTesting.options(2_000_000, 1));
        assertThat(r.outcome()).isEqualTo(ReproResult.Outcome.REPRODUCED);
        assertThat(r.extra().get("engine")).isEqualTo("io_uring");
    }

    @Test
    void crossThreadCompletionIsHeldOnIoUringWithTheGuardOn() throws Exception {
        ReproResult r = ReproTesting.run(new CrossThreadCompletionRepro(AioMode.IO_URING), true,
                ReproTesting.options(50_000, 1));
        CrossThreadCompletionStressTest.assertHeld(r, 50_000);
        assertThat(r.extra().get("engine")).isEqualTo("io_uring");
    }

    @Test
    void crossThreadCompletionIsHeldWithTheGuardOn() throws Exception {
        ReproResult r = ReproTesting.run(new CrossThreadCompletionRepro(), true, ReproTesting.options(50_000, 1));
        CrossThreadCompletionStressTest.assertHeld(r, 50_000);
    }

    @Test
    void nestedWaitDeadlockIsReproducedWithTheGuardOff() throws Exception {
        ReproResult r = ReproTesting.run(new NestedWaitDeadlockRepro(), false, ReproTesting.options(50, 1));
        assertThat(r.outcome()).isEqualTo(ReproResult.Outcome.REPRODUCED);
        assertThat(r.detail()).startsWith("deadlock");
        assertThat(r.iterations()).isEqualTo(1);
        assertThat(r.extra().get("listener")).isEqualTo("main-loop-source");
        assertThat(r.extra().get("nested_wait_timeouts")).isEqualTo("1");
    }

    @Test
    void nestedWaitDeadlockIsHeldWithTheGuardOn() throws Exception {
        ReproResult r = ReproTesting.run(new NestedWaitDeadlockRepro(), true, ReproTesting.options(100, 1));
        assertThat(r.outcome()).isEqualTo(ReproResult.Outcome.HELD);
        assertThat(r.extra().get("accepted")).as("each open was accepted inside its nested wait").isEqualTo("100");
        assertThat(r.extra().get("nested_waits")).isEqualTo("100");
        assertThat(r.extra().get("listener")).isEqualTo("aio-context");
    }
}
