package io.vblk.tools.repro;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Duration;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Seed 004 in its real setting ({@code vblk repro nested-wait-deadlock --mode nbd-qcow2}): a
 * {@code vblk serve} daemon exports a raw node over NBD and opens a qcow2 node whose backing is
 * {@code driver=nbd} pointing at that same export, at start-up and with QMP {@code blockdev-add}.
 * Guard off: both opens hang in the main loop's nested wait (seen on its stack) until the
 * product's bound ends them. Guard on: 21 opens (1 at start-up, 20 at run time), each serving a
 * verifying guest. Slow tier: the guard-off run waits out two 10 s handshake bounds.
 */
@Tag("slow")
@Timeout(value = 400, unit = TimeUnit.SECONDS)
class NbdQcow2DeadlockReproTest {
    private static ReproOptions options(int iterations) {
        // Generous wall-clock bounds: a loaded machine slows every open and guest, never the verdict.
        return new ReproOptions(iterations, Duration.ofSeconds(240), Duration.ofSeconds(2), 7);
    }

    @Test
    void withTheGuardOffTheQcow2OpenHangsInTheNestedWaitAtStartUpAndInBlockdevAdd() throws Exception {
        ReproResult r = ReproTesting.run(new NestedWaitDeadlockRepro(NestedWaitDeadlockRepro.Mode.NBD_QCOW2), false,
                options(1));
        assertThat(r.outcome()).as(r.line()).isEqualTo(ReproResult.Outcome.REPRODUCED);
        assertThat(r.detail()).startsWith("deadlock").contains("no answer within");
        assertThat(r.extra().get("listener")).isEqualTo("main-loop-source");
        assertThat(Long.parseLong(r.extra().get("nested_wait_timeouts"))).isPositive();
        assertThat(r.extra().get("stack")).contains("NestedWait.run").contains("NbdClientHandshake")
                .contains("AioContext.waitWhile").contains("Qcow2Open");
    }

    @Test
    void withTheGuardOnEveryOpenOverTheOwnExportCompletesAndServesAVerifyingGuest() throws Exception {
        ReproResult r = ReproTesting.run(new NestedWaitDeadlockRepro(NestedWaitDeadlockRepro.Mode.NBD_QCOW2), true,
                options(20));
        assertThat(r.outcome()).as(r.line()).isEqualTo(ReproResult.Outcome.HELD);
        assertThat(r.extra().get("opened")).isEqualTo("21");
        assertThat(r.extra().get("guests_served")).isEqualTo("21");
        // Each open's NBD client connected to this daemon's own server inside the nested wait.
        assertThat(Long.parseLong(r.extra().get("nbd_connections_accepted"))).isGreaterThanOrEqualTo(21);
        assertThat(Long.parseLong(r.extra().get("nested_waits"))).isGreaterThanOrEqualTo(21);
        assertThat(r.extra().get("listener")).isEqualTo("aio-context");
    }
}
