package io.vblk.aio;

import java.util.function.BooleanSupplier;

/**
 * Home thread: the owning context's. No locking.
 *
 * <p>A busy-poll hook: asked, before the loop blocks, whether it has work (a completion ring that
 * filled, a virtqueue whose avail index moved). Used only when adaptive polling is on.
 */
public final class PollHandler {
    private final AioContext ctx;
    private final String name;
    final BooleanSupplier poll;
    private boolean removed;

    PollHandler(AioContext ctx, String name, BooleanSupplier poll) {
        this.ctx = ctx;
        this.name = name;
        this.poll = poll;
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
