package io.vblk.tools.repro;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Duration;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Seed 003 on the real mirror pivot: with the guard off a guest write reaches the source after the
 * pivot's last copy (and is missing from the target); with it on, none in 1000 pivots.
 */
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class MirrorPivotReproTest {

    @Test
    void aGuestWriteMissesTheLastCopyWithTheGuardOff() throws Exception {
        ReproResult r = ReproTesting.run(new DrainLeakRepro(DrainLeakRepro.Mode.MIRROR), false, ReproTesting.options(1000, 3));
        assertThat(r.outcome()).isEqualTo(ReproResult.Outcome.REPRODUCED);
        assertThat(Long.parseLong(r.extra().get("late_chunks"))).isPositive();
        assertThat(r.detail()).contains("after the pivot's last copy");
    }

    @Test
    void noGuestWriteMissesItInAThousandPivotsWithTheGuardOn() throws Exception {
        ReproResult r = ReproTesting.run(new DrainLeakRepro(DrainLeakRepro.Mode.MIRROR), true,
                new ReproOptions(1000, Duration.ofSeconds(240), Duration.ofSeconds(5), 3));
        assertThat(r.outcome()).isEqualTo(ReproResult.Outcome.HELD);
        assertThat(r.iterations()).isEqualTo(1000);
        assertThat(r.extra().get("late_chunks")).isEqualTo("0");
        assertThat(r.extra().get("verify_failures")).isEqualTo("0");
        assertThat(Long.parseLong(r.extra().get("requests"))).isPositive();
    }
}
