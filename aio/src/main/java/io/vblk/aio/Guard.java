package io.vblk.aio;

/**
 * Any thread: constants.
 *
 * <p>The guards against the five seed hazards. All are on by default; only the reproducers
 * ({@code vblk repro}) and tests turn one off, per context, to show what it prevents.
 */
public enum Guard {
    /** Seed 000: cap the depth of the submit → complete → defer-call end → submit cycle. */
    SUBMIT_DEPTH,
    /** Seed 001: a wake that races the sleeper's arming is never lost. */
    WAKE_ORDER,
    /** Seed 002: state is touched only on its home thread; other threads hand work over. */
    HOME_THREAD,
    /**
     * Seed 003: a drained section of a block node stops the devices attached to it from taking
     * guest requests. Read by each device queue on its own context.
     */
    DRAIN_STOPS_DEVICES,
    /** Seed 004: no blocking (nested) wait on a context's home thread. */
    NO_BLOCKING_WAIT
}
