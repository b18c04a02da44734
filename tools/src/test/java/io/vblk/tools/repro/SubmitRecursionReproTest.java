package io.vblk.tools.repro;

import io.vblk.aio.engine.AioMode;
import io.vblk.aio.engine.SubmitGuard;

import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Seed 000: the submit recursion shown with the guard off (bounded by the workload), held with it on. */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class SubmitRecursionReproTest {

    @Test
    void recursionIsReproducedWithTheGuardOff() throws Exception {
        ReproResult r = ReproTesting.run(new SubmitRecursionRepro(), false, ReproTesting.options(2000, 1));
        assertThat(r.outcome()).isEqualTo(ReproResult.Outcome.REPRODUCED);
        assertThat(r.expected()).isTrue();
        // Both drivers recursed until the workload's own limit: nothing else stopped the cycle.
        assertThat(r.extra().get("file_max_depth")).isEqualTo(String.valueOf(SubmitRecursionRepro.DEPTH_LIMIT));
        assertThat(r.extra().get("null_max_depth")).isEqualTo(String.valueOf(SubmitRecursionRepro.DEPTH_LIMIT));
        assertThat(r.extra().get("max_depth")).isEqualTo(String.valueOf(SubmitRecursionRepro.DEPTH_LIMIT));
        assertThat(r.extra().get("cap_hits")).isEqualTo("0");
        assertThat(r.detail()).contains("without bound");
        assertThat(r.line()).contains("max_depth=" + SubmitRecursionRepro.DEPTH_LIMIT);
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
        // The file scenario recursed far past the cap, though not always to the workload's limit:
        // io_uring hands a buffered write that would block (a page under writeback) to its async
        // workers, and such a completion arrives from the loop and starts the chain again.
        assertThat(Integer.parseInt(r.extra().get("file_max_depth"))).isGreaterThan(2 * SubmitGuard.DEFAULT_CAP);
        assertThat(r.extra().get("null_max_depth")).isEqualTo(String.valueOf(SubmitRecursionRepro.DEPTH_LIMIT));
        assertThat(r.extra().get("cap_hits")).isEqualTo("0");
    }

    @Test
    void depthStaysAtTheCapOnIoUringWithTheGuardOn() throws Exception {
        ReproResult r = ReproTesting.run(new SubmitRecursionRepro(AioMode.IO_URING), true, ReproTesting.options(2000, 1));
        assertThat(r.outcome()).isEqualTo(ReproResult.Outcome.HELD);
        assertThat(r.line()).contains(" engine=io_uring ");
        // 2000 requests per driver, each completed once; a write in flight at the end still gets its read.
        assertThat(r.iterations()).isBetween(4000L, 4000L + SubmitRecursionRepro.SLOTS);
        assertThat(Integer.parseInt(r.extra().get("file_max_depth"))).isEqualTo(SubmitGuard.DEFAULT_CAP);
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
