package io.vblk.aio;

import java.util.function.BooleanSupplier;

/**
 * Home thread: the owning context's. No locking.
 *
 * <p>A busy-poll hook: asked, before the loop blocks, whether it has work (a completion ring that
 * filled, a virtqueue whose avail index moved). Used only when adaptive polling is on.
 *
 * <p>{@code pollBegin} runs once when the loop starts polling (the first busy-poll window after a
 * block) and {@code pollEnd} once when polling ends, before the loop blocks (QEMU's {@code io_poll_begin} /
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
    /** pollBegin ran in the current started period and pollEnd has not yet ({@link Poller}). */
    boolean begun;
    boolean removed;

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

    /**
     * Unregisters the hook; if polling is started and it began, its {@code pollEnd} runs now. Safe
     * from inside a poll callback: the loop never polls it again. Home thread.
     */
    public void remove() {
        ctx.assertLoopThread();
        if (!removed) {
            removed = true;
            ctx.forget(this);
        }
    }
}
