package io.vblk.tools.repro;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/** Seed 003: guest requests reach the driver inside a drained section only with the guard off. */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class DrainLeakReproTest {

    @Test
    void aRequestStartsInsideTheSectionWithTheGuardOff() throws Exception {
        ReproResult r = ReproTesting.run(new DrainLeakRepro(), false, ReproTesting.options(2000, 3));
        assertThat(r.outcome()).isEqualTo(ReproResult.Outcome.REPRODUCED);
        assertThat(r.expected()).isTrue();
        assertThat(Long.parseLong(r.extra().get("started_inside"))).isPositive();
        // The product's meter (vblk.guard.drained.requests.started) saw the queue take them too.
        assertThat(Long.parseLong(r.extra().get("started_inside_meter"))).isPositive();
        assertThat(r.detail()).contains("inside");
    }

    @Test
    void noRequestStartsInsideAndNoneIsLostWithTheGuardOn() throws Exception {
        ReproResult r = ReproTesting.run(new DrainLeakRepro(), true, ReproTesting.options(300, 3));
        assertThat(r.outcome()).isEqualTo(ReproResult.Outcome.HELD);
        assertThat(r.iterations()).isEqualTo(300);
        assertThat(r.extra().get("started_inside")).isEqualTo("0");
        assertThat(r.extra().get("started_inside_meter")).isEqualTo("0");
        assertThat(r.extra().get("lost")).isEqualTo("0");
        // The guard was exercised: guest requests waited in the ring while the device was drained.
        assertThat(Long.parseLong(r.extra().get("sections_with_guest_waiting"))).isGreaterThan(240);
        assertThat(Long.parseLong(r.extra().get("requests"))).isPositive();
    }
}
