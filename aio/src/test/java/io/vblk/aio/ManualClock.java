package io.vblk.aio;

import java.util.concurrent.atomic.AtomicLong;

/**
 * A clock that moves only when told, for deterministic timer tests.
 *
 * <p>Any thread.
 */
public final class ManualClock implements NanoClock {
    private final AtomicLong now = new AtomicLong(1_000_000_000L);

    @Override
    public long nanoTime() {
        return now.get();
    }

    public void advance(long nanos) {
        now.addAndGet(nanos);
    }
}
