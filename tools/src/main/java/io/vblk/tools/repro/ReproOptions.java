package io.vblk.tools.repro;

import java.time.Duration;

/**
 * Any thread: immutable.
 *
 * <p>How hard and how long a reproducer tries.
 *
 * @param iterations upper bound on workload iterations (a reproducer may stop earlier once the
 *                   hazard is shown)
 * @param timeLimit  wall-clock bound for the whole run
 * @param hangAfter  how long one step may make no progress before a watchdog calls it a hang
 * @param seed       seed for any randomness; printed so a run can be repeated
 */
public record ReproOptions(int iterations, Duration timeLimit, Duration hangAfter, long seed) {
    public static ReproOptions defaults() {
        return new ReproOptions(2000, Duration.ofSeconds(30), Duration.ofSeconds(2), 1);
    }
}
