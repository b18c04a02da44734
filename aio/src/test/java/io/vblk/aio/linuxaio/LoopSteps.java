package io.vblk.aio.linuxaio;

import io.vblk.aio.AioContext;
import io.vblk.aio.Timer;

import java.time.Duration;
import java.util.function.BooleanSupplier;

/**
 * Test helper: steps a context on its home thread until a condition holds, with a bound. A timer
 * armed at the deadline makes sure a blocking poll returns even when nothing else happens.
 *
 * <p>Home thread: the context's.
 */
public final class LoopSteps {
    private LoopSteps() {
    }

    /** Polls until {@code done} is true; throws AssertionError naming {@code what} after {@code timeout}. */
    public static void pollUntil(AioContext ctx, BooleanSupplier done, Duration timeout, String what) {
        long deadline = System.nanoTime() + timeout.toNanos();
        Timer wake = ctx.timer("poll-until-deadline", () -> { });
        try {
            while (!done.getAsBoolean()) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    throw new AssertionError("not reached within " + timeout + ": " + what);
                }
                wake.armIn(Math.min(left, Duration.ofMillis(50).toNanos()));
                ctx.poll(true);
            }
        } finally {
            wake.cancel();
        }
    }

    public static void pollUntil(AioContext ctx, BooleanSupplier done, String what) {
        pollUntil(ctx, done, Duration.ofSeconds(10), what);
    }
}
