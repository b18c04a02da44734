package io.vblk.aio;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.BooleanSupplier;

/**
 * Home thread: the context's; a helper of {@link AioContext#waitWhile}, with no state of its own.
 *
 * <p>The nested wait of QEMU's {@code AIO_WAIT_WHILE}: the context's own fd handlers, bottom
 * halves and timers keep running while the caller waits; main-loop sources do not (they are taken
 * out of the epoll input set for the wait and put back after it), as a nested {@code aio_poll}
 * never runs GLib's sources. A listener registered that way ({@link AioContext#addListener} with
 * the seed-004 guard off, where QEMU kept the NBD server's listener before its fix) can then never
 * accept the connection the wait needs: seed 004. A timer bounds the wait, so that hang becomes a
 * false return and a count ({@link AioContext#nestedWaitTimeouts}).
 */
final class NestedWait {
    private NestedWait() {
    }

    static boolean run(AioContext ctx, List<FdHandler> fdHandlers, BooleanSupplier busy, Duration bound) {
        List<FdHandler> hidden = new ArrayList<>();
        for (FdHandler h : fdHandlers) {
            if (h.mainLoopOnly && h.enabled() && !h.hiddenByNestedWait) {
                h.hiddenByNestedWait = true;
                h.enable(false);
                hidden.add(h);
            }
        }
        // The timer only wakes a blocked poll at the bound; the loop below checks the time.
        Timer limit = ctx.timer(ctx.name() + ".wait-while", () -> { });
        long deadline = ctx.clock().nanoTime() + bound.toNanos();
        limit.armAt(deadline);
        try {
            while (busy.getAsBoolean()) {
                if (ctx.clock().nanoTime() - deadline >= 0) {
                    return false;
                }
                ctx.poll(true);
            }
            return true;
        } finally {
            limit.cancel();
            for (FdHandler h : hidden) {
                h.hiddenByNestedWait = false;
                if (!h.paused() && !h.removed()) {
                    h.enable(true);
                }
            }
        }
    }
}
