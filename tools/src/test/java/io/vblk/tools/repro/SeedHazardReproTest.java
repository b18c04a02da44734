package io.vblk.tools.repro;

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
        ReproResult r = ReproTesting.run(new CrossThreadCompletionRepro(), false, ReproTesting.options(3000, 1));
        assertThat(r.outcome()).isEqualTo(ReproResult.Outcome.REPRODUCED);
        assertThat(r.detail()).containsAnyOf("completed twice", "went backwards", "never completed", "did not finish");
    }

    @Test
    void crossThreadCompletionIsHeldWithTheGuardOn() throws Exception {
        ReproResult r = ReproTesting.run(new CrossThreadCompletionRepro(), true, ReproTesting.options(500, 1));
        assertThat(r.outcome()).isEqualTo(ReproResult.Outcome.HELD);
        assertThat(r.extra().get("refused")).isEqualTo("500");
    }

    @Test
    void nestedWaitDeadlockIsReproducedWithTheGuardOff() throws Exception {
        ReproResult r = ReproTesting.run(new NestedWaitDeadlockRepro(), false, ReproTesting.options(50, 1));
        assertThat(r.outcome()).isEqualTo(ReproResult.Outcome.REPRODUCED);
        assertThat(r.detail()).startsWith("deadlock");
        assertThat(r.iterations()).isEqualTo(1);
    }

    @Test
    void nestedWaitDeadlockIsHeldWithTheGuardOn() throws Exception {
        ReproResult r = ReproTesting.run(new NestedWaitDeadlockRepro(), true, ReproTesting.options(100, 1));
        assertThat(r.outcome()).isEqualTo(ReproResult.Outcome.HELD);
        assertThat(r.extra().get("refused_waits")).isEqualTo("100");
    }
}
