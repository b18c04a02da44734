package io.vblk.aio.testing;

import java.lang.management.ManagementFactory;
import java.util.function.Supplier;

/**
 * Home thread: the calling thread (it counts the bytes that thread allocates).
 *
 * <p>Steady-state allocation of a request loop: runs {@code batch} (which completes
 * {@code batchSize} requests on this thread) until the JIT has settled, then measures windows of
 * {@link #WINDOW_REQUESTS} requests with {@code ThreadMXBean.getThreadAllocatedBytes} until one
 * allocates under {@link #NOISE_BYTES} (background allocation of a rare compilation or a first
 * lazy initialisation can fall into one window) or {@link #MAX_WINDOWS} have run. Shared by the
 * engines' allocation tests.
 */
public final class Allocations {
    public static final long WINDOW_REQUESTS = 200_000;
    public static final long NOISE_BYTES = 1024;
    static final int MAX_WINDOWS = 15;
    private static final com.sun.management.ThreadMXBean THREADS =
            (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();

    private Allocations() {
    }

    /** The bytes allocated by the last measured window; prints each window with {@code detail}. */
    public static long steadyStateBytes(String label, Runnable batch, int batchSize, Supplier<String> detail) {
        long self = Thread.currentThread().threadId();
        for (int i = 0; i < 2 * WINDOW_REQUESTS / batchSize; i++) {
            batch.run();
        }
        long bytes = Long.MAX_VALUE;
        for (int window = 0; window < MAX_WINDOWS && bytes >= NOISE_BYTES; window++) {
            long a0 = THREADS.getThreadAllocatedBytes(self);
            for (int i = 0; i < WINDOW_REQUESTS / batchSize; i++) {
                batch.run();
            }
            bytes = THREADS.getThreadAllocatedBytes(self) - a0;
            System.out.printf("%s window %d: %d bytes over %d requests, %s%n", label, window, bytes,
                    WINDOW_REQUESTS, detail.get());
        }
        return bytes;
    }
}
