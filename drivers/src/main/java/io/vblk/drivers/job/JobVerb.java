package io.vblk.drivers.job;

import java.util.Locale;

/**
 * Any thread: immutable.
 *
 * <p>What a user may ask of a job, as QEMU's {@code JobVerb}, with QEMU's {@code JobVerbTable}:
 * {@link #allowedIn} says in which statuses each verb is accepted; a refused verb fails with
 * QEMU's message ({@link Job#checkVerb}).
 */
public enum JobVerb {
    CANCEL, PAUSE, RESUME, SET_SPEED, COMPLETE, FINALIZE, DISMISS;

    /** Rows in declaration order; columns as {@link JobStatus} (U, C, R, P, Y, S, W, D, X, E, N). */
    private static final int[][] TABLE = {
            /* cancel    */ {0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0},
            /* pause     */ {0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0},
            /* resume    */ {0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0},
            /* set-speed */ {0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0},
            /* complete  */ {0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0},
            /* finalize  */ {0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0},
            /* dismiss   */ {0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0},
    };

    public boolean allowedIn(JobStatus s) {
        return TABLE[ordinal()][s.ordinal()] == 1;
    }

    /** The QAPI spelling ("set-speed"). */
    public String qapi() {
        return name().toLowerCase(Locale.ROOT).replace('_', '-');
    }
}
