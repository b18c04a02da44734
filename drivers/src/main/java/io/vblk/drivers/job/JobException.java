package io.vblk.drivers.job;

/**
 * Any thread: immutable.
 *
 * <p>A job verb or a job's creation refused, with QEMU's message for the same refusal (a monitor
 * answers it as a GenericError).
 */
public final class JobException extends RuntimeException {
    public JobException(String message) {
        super(message, null, false, false);
    }

    /** A bitmap's (a mirror's copy) granularity: a power of two in [512 B, 64 MiB], as QEMU's checks. */
    static void checkGranularity(int granularity) {
        if (granularity < 512 || granularity > (64 << 20)) {
            throw new JobException("Parameter 'granularity' expects a value in range [512B, 64MB]");
        }
        if (Integer.bitCount(granularity) != 1) {
            throw new JobException("Granularity must be power of 2");
        }
    }
}
