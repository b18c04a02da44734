package io.vblk.tools.repro;

import io.vblk.aio.engine.AioMode;
import org.junit.jupiter.api.RepeatedTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Seed 000 in a mirror job: with the guard off the job's copy loop recurses through synchronous
 * completions until its thread's stack overflows (the JVM goes on); with it on the job completes
 * with the target equal to the source and the submit depth at its cap.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class MirrorRecursionReproTest {

    @Test
    void theCopyLoopOverflowsItsStackWithTheGuardOff() throws Exception {
        ReproResult r = ReproTesting.run(new SubmitRecursionRepro(AioMode.NATIVE, true), false, ReproTesting.options(1, 1));
        assertThat(r.outcome()).as(r.line()).isEqualTo(ReproResult.Outcome.REPRODUCED);
        assertThat(r.extra().get("overflow")).isEqualTo("StackOverflowError");
        assertThat(r.extra().get("cycle")).contains("SubmissionQueue.processCompletions", "DeferCall.end",
                "SubmissionQueue.deferredSubmit");
        assertThat(Integer.parseInt(r.extra().get("max_submit_depth"))).isGreaterThan(100);
    }

    @RepeatedTest(3)
    void theJobCompletesFlatWithTheGuardOn() throws Exception {
        ReproResult r = ReproTesting.run(new SubmitRecursionRepro(AioMode.NATIVE, true), true, ReproTesting.options(1, 1));
        assertThat(r.outcome()).as(r.line()).isEqualTo(ReproResult.Outcome.HELD);
        assertThat(Long.parseLong(r.extra().get("bytes_copied"))).isGreaterThanOrEqualTo(MirrorRecursionRepro.SIZE);
        assertThat(Integer.parseInt(r.extra().get("max_submit_depth"))).isBetween(1, 8);
        assertThat(r.extra().get("overflow")).isEqualTo("none");
    }
}
