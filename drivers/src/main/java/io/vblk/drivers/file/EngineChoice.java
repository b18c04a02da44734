package io.vblk.drivers.file;

import io.vblk.aio.AioContext;
import io.vblk.aio.engine.AioMode;
import io.vblk.aio.engine.IoEngine;
import io.vblk.aio.linuxaio.LinuxAio;
import io.vblk.aio.threadpool.WorkerPool;
import io.vblk.aio.uring.UringBackend;

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
     * Fails (an {@link IllegalArgumentException} naming the option) when this machine has no engine
     * for {@code mode} (io_uring: the kernel refuses io_uring_setup); {@link FileDriver#open} calls
     * it so a bad mode stops start-up.
     */
    static void requireAvailable(AioMode mode) {
        if (mode == AioMode.IO_URING) {
            String why = IoUringProbe.REASON;
            if (why != null) {
                throw new IllegalArgumentException("aio=io_uring: this kernel gives no io_uring (" + why
                        + "); use aio=native or aio=threads");
            }
        }
    }

    /** The context's engine for {@code mode}, taking a reference. Home thread of {@code ctx}. */
    static IoEngine open(AioContext ctx, AioMode mode) {
        requireAvailable(mode);
        return switch (mode) {
            case NATIVE -> LinuxAio.of(ctx);
            case THREADS -> WorkerPool.of(ctx);
            case IO_URING -> UringBackend.of(ctx);
        };
    }

    /** Asks the kernel once per JVM whether it sets up an io_uring. */
    private static final class IoUringProbe {
        static final String REASON = UringBackend.unavailableReason();
    }
}
