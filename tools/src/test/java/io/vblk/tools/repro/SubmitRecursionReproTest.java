package io.vblk.tools.repro;

import io.vblk.aio.engine.AioMode;
import io.vblk.aio.engine.SubmitGuard;

import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Seed 000: the submit recursion overflows a small stack with the guard off, and is held with it on. */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class SubmitRecursionReproTest {

    @Test
    void recursionOverflowsTheStackWithTheGuardOff() throws Exception {
        ReproResult r = ReproTesting.run(new SubmitRecursionRepro(), false, ReproTesting.options(2000, 1));
        assertThat(r.outcome()).isEqualTo(ReproResult.Outcome.REPRODUCED);
        assertThat(r.expected()).isTrue();
        // Both drivers recursed until the small stack overflowed: nothing else stopped the cycle.
        assertOverflowed(r);
        assertThat(r.extra().get("file_overflow")).isEqualTo("yes");
        assertThat(r.detail()).contains("stack overflowed");
        assertThat(r.line()).contains(" result=reproduced ").contains(" overflow=StackOverflowError ");
    }

    /** What every guard-off overflow shows: seed 000's cycle, far past the cap, no cap hit. */
    private static void assertOverflowed(ReproResult r) {
        assertThat(r.extra().get("overflow")).isEqualTo("StackOverflowError");
        assertThat(r.extra().get("null_overflow")).isEqualTo("yes");
        assertThat(Integer.parseInt(r.extra().get("null_max_depth"))).isGreaterThan(4 * SubmitGuard.DEFAULT_CAP)
                .isLessThan(SubmitRecursionRepro.DEPTH_LIMIT);
        assertThat(r.extra().get("cap_hits")).isEqualTo("0");
        // One turn of the cycle, read from the error's trace: submit, its completion pass (whose
        // callbacks queue the next requests and return), the section end, the deferred submit.
        assertThat(r.extra().get("cycle")).startsWith("SubmissionQueue.ioqSubmit>")
                .contains(">SubmissionQueue.processCompletions>").contains(">DeferCall.end>")
                .endsWith(">SubmissionQueue.deferredSubmit");
    }

    /** The test JVM survives the overflow: a second guard-off run in the same JVM overflows again. */
    @Test
    void theJvmSurvivesRepeatedOverflows() throws Exception {
        for (int i = 0; i < 2; i++) {
            ReproResult r = ReproTesting.run(new SubmitRecursionRepro(), false, ReproTesting.options(2000, 1));
            assertThat(r.outcome()).isEqualTo(ReproResult.Outcome.REPRODUCED);
            assertOverflowed(r);
        }
    }

    @Test
    void depthStaysAtTheCapWithTheGuardOn() throws Exception {
        ReproResult r = ReproTesting.run(new SubmitRecursionRepro(), true, ReproTesting.options(2000, 1));
        assertThat(r.outcome()).isEqualTo(ReproResult.Outcome.HELD);
        assertThat(r.expected()).isTrue();
        assertThat(r.iterations()).isEqualTo(4000); // 2000 requests per driver, each completed once
        assertThat(Integer.parseInt(r.extra().get("max_depth"))).isEqualTo(SubmitGuard.DEFAULT_CAP);
        assertThat(Long.parseLong(r.extra().get("cap_hits"))).isPositive();
        // io_submit completed page-cache requests in the submitting frame on this machine.
        String[] sync = r.extra().get("file_sync_completions").split("/");
        assertThat(Long.parseLong(sync[0])).isPositive();
    }

    /** io_uring completes page-cache requests inside io_uring_enter: the same cycle, the same guard. */
    @Test
    void recursionIsReproducedOnIoUringWithTheGuardOff() throws Exception {
        ReproResult r = ReproTesting.run(new SubmitRecursionRepro(AioMode.IO_URING), false, ReproTesting.options(2000, 1));
        assertThat(r.outcome()).isEqualTo(ReproResult.Outcome.REPRODUCED);
        assertThat(r.line()).contains(" engine=io_uring ");
        // The null scenario overflows; the file scenario recurses far past the cap, though not
        // always to an overflow: io_uring hands a buffered write that would block (a page under
        // writeback) to its async workers, and such a completion starts the chain again from the loop.
        assertOverflowed(r);
        assertThat(Integer.parseInt(r.extra().get("file_max_depth"))).isGreaterThan(2 * SubmitGuard.DEFAULT_CAP);
    }

    @Test
    void depthStaysAtTheCapOnIoUringWithTheGuardOn() throws Exception {
        ReproResult r = ReproTesting.run(new SubmitRecursionRepro(AioMode.IO_URING), true, ReproTesting.options(2000, 1));
        assertThat(r.outcome()).isEqualTo(ReproResult.Outcome.HELD);
        assertThat(r.line()).contains(" engine=io_uring ");
        // 2000 requests per driver, each completed once; a write in flight at the end still gets its read.
        assertThat(r.iterations()).isBetween(4000L, 4000L + SubmitRecursionRepro.SLOTS);
        // Never past the cap; io_uring may hand page-cache writes to its workers, so under load the
        // chain can stay shorter than the cap (a CI run saw 3).
        assertThat(Integer.parseInt(r.extra().get("file_max_depth"))).isBetween(1, SubmitGuard.DEFAULT_CAP);
        assertThat(Long.parseLong(r.extra().get("cap_hits"))).isPositive();
        // io_uring_enter completed page-cache requests in the submitting frame.
        String[] sync = r.extra().get("file_sync_completions").split("/");
        assertThat(Long.parseLong(sync[0])).isPositive();
    }

    @Test
    void theEngineIsNamedOnTheLineAndThreadsIsRefused() throws Exception {
        ReproResult r = ReproTesting.run(new SubmitRecursionRepro(), true, ReproTesting.options(200, 1));
        assertThat(r.line()).contains(" engine=native ");
        assertThatThrownBy(() -> new SubmitRecursionRepro(AioMode.THREADS))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("native or io_uring");
    }
}
