package io.vblk.aio;

import java.util.function.BooleanSupplier;

/**
 * Home thread: the owning context's. No locking.
 *
 * <p>A busy-poll hook: asked, before the loop blocks, whether it has work (a completion ring that
 * filled, a virtqueue whose avail index moved). Used only when adaptive polling is on.
 *
 * <p>{@code pollBegin} runs when the loop starts a busy-poll window and {@code pollEnd} when the
 * window closes without finding work, before the loop blocks (QEMU's {@code io_poll_begin} /
 * {@code io_poll_end}): a virtqueue switches guest notifications off for the window and back on
 * at its end. After {@code pollEnd} the loop polls once more, so work that arrived between the
 * last poll and the re-enable is not left waiting for a notification that was suppressed.
 */
public final class PollHandler {
    private final AioContext ctx;
    private final String name;
    final BooleanSupplier poll;
    final Runnable pollBegin;
    final Runnable pollEnd;
    private boolean removed;

    PollHandler(AioContext ctx, String name, BooleanSupplier poll, Runnable pollBegin, Runnable pollEnd) {
        this.ctx = ctx;
        this.name = name;
        this.poll = poll;
        this.pollBegin = pollBegin;
        this.pollEnd = pollEnd;
    }

    public String name() {
        return name;
    }

    public void remove() {
        ctx.assertLoopThread();
        if (!removed) {
            removed = true;
            ctx.forget(this);
        }
    }
}
