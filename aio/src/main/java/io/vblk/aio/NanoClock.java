package io.vblk.aio;

/**
 * Any thread.
 *
 * <p>The time source of a context's timers. Injected so that tests step time by hand.
 */
@FunctionalInterface
public interface NanoClock {
    /** The system's monotonic clock. */
    NanoClock SYSTEM = System::nanoTime;

    /** Monotonic nanoseconds; only differences mean anything. */
    long nanoTime();
}
