package io.vblk.drivers.file;

import io.vblk.aio.AioContext;
import io.vblk.aio.engine.AioMode;
import io.vblk.aio.engine.IoEngine;
import io.vblk.aio.linuxaio.LinuxAio;
import io.vblk.aio.threadpool.WorkerPool;

/**
 * Any thread for {@link #requireAvailable}; {@link #open} on the context's home thread.
 *
 * <p>The one place where an {@code aio=} mode becomes an engine: the context's shared
 * {@link IoEngine} of that kind, refcounted ({@link IoEngine#release()} when the channel closes).
 */
final class EngineChoice {
    private EngineChoice() {
    }

    /**
     * Fails (an {@link IllegalArgumentException} naming the option) when this build has no engine
     * for {@code mode}; {@link FileDriver#open} calls it so a bad mode stops start-up.
     */
    static void requireAvailable(AioMode mode) {
        if (mode == AioMode.IO_URING) {
            throw new IllegalArgumentException("aio=io_uring: io_uring engine not available in this build;"
                    + " use aio=native or aio=threads");
        }
    }

    /** The context's engine for {@code mode}, taking a reference. Home thread of {@code ctx}. */
    static IoEngine open(AioContext ctx, AioMode mode) {
        requireAvailable(mode);
        return switch (mode) {
            case NATIVE -> LinuxAio.of(ctx);
            case THREADS -> WorkerPool.of(ctx);
            case IO_URING -> throw new AssertionError("refused by requireAvailable");
        };
    }
}
