package io.vblk.aio.engine;

/**
 * Home thread: the engine's (completions run there).
 *
 * <p>A test completion that counts, so that a double or a lost completion shows: each request is
 * marked in its {@code ownerWord} when it completes (clear it before reusing the request), a second
 * completion of a marked request counts in {@link #doubles}. Shared by the engine tests.
 */
public final class CountingCompletion implements IoRequest.Completion {
    public int count;
    public int doubles;
    public long lastResult;

    @Override
    public void aioCompleted(IoRequest req, long result) {
        if (req.ownerWord != 0) {
            doubles++;
        }
        req.ownerWord = 1;
        count++;
        lastResult = result;
    }
}
