package io.vblk.drivers.job;

import java.util.Locale;

/**
 * Any thread: immutable.
 *
 * <p>What a job does when one of its requests fails, as QEMU's {@code BlockdevOnError}
 * ({@code on-source-error} / {@code on-target-error}): {@code report} ends the job with the error,
 * {@code ignore} goes on (a mirror copies the chunk again), {@code stop} pauses the job until
 * {@code job-resume} (the chunk is copied again then), {@code enospc} stops on ENOSPC and reports
 * anything else. {@code auto} is {@code report} for jobs (it differs only for devices).
 */
public enum OnError {
    REPORT, IGNORE, ENOSPC, STOP, AUTO;

    /** The QAPI spelling. */
    public String qapi() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** Parses the QAPI spelling; null when unknown. */
    public static OnError parse(String s) {
        for (OnError e : values()) {
            if (e.qapi().equals(s)) {
                return e;
            }
        }
        return null;
    }

    /** The action for a request that failed with {@code -errno} (QEMU's {@code block_job_error_action}). */
    public Action actionFor(long errno) {
        return switch (this) {
            case REPORT, AUTO -> Action.REPORT;
            case IGNORE -> Action.IGNORE;
            case STOP -> Action.STOP;
            case ENOSPC -> errno == -28 ? Action.STOP : Action.REPORT; // ENOSPC = 28 (asm-generic/errno-base.h)
        };
    }

    /** What was done (BLOCK_JOB_ERROR's {@code action}). */
    public enum Action {
        IGNORE, REPORT, STOP;

        public String qapi() {
            return name().toLowerCase(Locale.ROOT);
        }
    }
}
