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
}
