package io.vblk.tools.repro;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Duration;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Seed 002 with the guard on under load: a million reads on the real Linux AIO engine while a
 * second thread hands a completion attempt over to the IoThread the whole time.
 */
@Tag("stress")
@Timeout(value = 600, unit = TimeUnit.SECONDS)
class CrossThreadCompletionStressTest {

    @Test
    void aMillionRequestsCompleteOnceEachWithBothThreadsActive() throws Exception {
        ReproOptions options = new ReproOptions(1_000_000, Duration.ofSeconds(400), Duration.ofSeconds(5), 7);
        ReproResult r = ReproTesting.run(new CrossThreadCompletionRepro(), true, options);
        assertHeld(r, 1_000_000);
    }

    /** Held: every request completed exactly once, on the home thread, with the foreign thread active. */
    static void assertHeld(ReproResult r, long requests) {
        assertThat(r.outcome()).isEqualTo(ReproResult.Outcome.HELD);
        assertThat(r.iterations()).isGreaterThanOrEqualTo(requests);
        assertThat(r.extra().get("double_completions")).isEqualTo("0");
        assertThat(r.extra().get("min_in_flight")).isEqualTo("0");
        assertThat(r.extra().get("wrong_thread_completions")).isEqualTo("0");
        assertThat(r.extra().get("engine_errors")).isEqualTo("0");
        assertThat(r.extra().get("teardown")).isEqualTo("released");
        // Both threads were active: the second one handed over an attempt every round.
        long handedOver = Long.parseLong(r.extra().get("handed_over"));
        assertThat(handedOver).isPositive().isEqualTo(Long.parseLong(r.extra().get("foreign_rounds")));
    }
}
