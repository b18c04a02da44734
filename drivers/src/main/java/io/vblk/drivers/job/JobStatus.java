package io.vblk.drivers.job;

import java.util.Locale;

/**
 * Any thread: immutable.
 *
 * <p>A job's status, as QEMU's {@code JobStatus} (qapi/job.json), with QEMU's transition table
 * ({@code JobSTT} in job.c): {@link #canBecome} is the only judge of a transition.
 *
 * <pre>
 *   undefined → created → running ⇄ paused
 *                            ↓ ↘
 *                          ready ⇄ standby
 *                            ↓
 *   running/ready → waiting → pending → concluded → null
 *   created/running/ready/waiting/pending → aborting → concluded
 * </pre>
 */
public enum JobStatus {
    UNDEFINED, CREATED, RUNNING, PAUSED, READY, STANDBY, WAITING, PENDING, ABORTING, CONCLUDED, NULL;

    /**
     * QEMU's JobSTT, row = from, column = to, in declaration order
     * (U, C, R, P, Y, S, W, D, X, E, N).
     */
    private static final int[][] STT = {
            /* U */ {0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0},
            /* C */ {0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1},
            /* R */ {0, 0, 0, 1, 1, 0, 1, 0, 1, 0, 0},
            /* P */ {0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0},
            /* Y */ {0, 0, 0, 0, 0, 1, 1, 0, 1, 0, 0},
            /* S */ {0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0},
            /* W */ {0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0},
            /* D */ {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0},
            /* X */ {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0},
            /* E */ {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1},
            /* N */ {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    };

    /** Whether QEMU allows a job in this status to go to {@code to}. */
    public boolean canBecome(JobStatus to) {
        return STT[ordinal()][to.ordinal()] == 1;
    }

    /** The QAPI spelling ("running", "concluded"). */
    public String qapi() {
        return name().toLowerCase(Locale.ROOT);
    }
}
