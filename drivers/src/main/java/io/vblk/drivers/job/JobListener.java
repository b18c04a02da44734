package io.vblk.drivers.job;

/**
 * Home thread: the jobs' (the main loop); every method is called there.
 *
 * <p>Hears what a job does, in the order QEMU emits its events: a monitor turns each call into the
 * QMP event named on it, metrics read progress. Every method has an empty default.
 */
public interface JobListener {
    /** JOB_STATUS_CHANGE: {@code job.status()} is new. */
    default void statusChanged(Job job) {
    }

    /** BLOCK_JOB_READY (after the change to ready). */
    default void ready(Job job) {
    }

    /** BLOCK_JOB_PENDING (after the change to pending). */
    default void pending(Job job) {
    }

    /** BLOCK_JOB_COMPLETED; {@code error} is null on success. */
    default void completed(Job job, String error) {
    }

    /** BLOCK_JOB_CANCELLED. */
    default void cancelled(Job job) {
    }

    /** BLOCK_JOB_ERROR: a request of the job failed and {@code action} was taken. */
    default void ioError(Job job, boolean read, OnError.Action action) {
    }
}
