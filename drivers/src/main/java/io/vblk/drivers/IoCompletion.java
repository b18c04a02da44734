package io.vblk.drivers;

/**
 * Home thread: the owning IoThread of the channel the request was submitted to.
 *
 * <p>Hears that a {@link BlockIo} finished. Called exactly once per submitted request, on the home
 * thread of the channel it was submitted to, possibly from inside {@link BlockChannel#submit} (a
 * synchronously completing driver) — callers must be ready for that re-entry (seed 000).
 */
@FunctionalInterface
public interface IoCompletion {
    /**
     * @param io     the request, free for reuse once this returns
     * @param result bytes transferred (READ/WRITE) or 0 on success; a negative errno on failure
     */
    void ioCompleted(BlockIo io, long result);
}
