package io.vblk.aio;

/**
 * Any thread: immutable.
 *
 * <p>Tunables of one event loop, named as in QEMU's {@code iothread} object.
 *
 * @param pollMaxNs   longest busy-poll window before the loop blocks; 0 turns polling off
 *                    (QEMU {@code poll-max-ns}; its default is 32768 on IoThreads)
 * @param pollGrow    factor the window grows by after a wait shorter than poll-max-ns; 0 means 2
 *                    (QEMU {@code poll-grow})
 * @param pollShrink  divisor the window shrinks by after a wait longer than poll-max-ns; 0 resets
 *                    the window to 0, as QEMU's {@code poll-shrink} default
 * @param aioMaxBatch most requests one {@code io_submit} may carry; 0 means the driver's choice
 *                    (QEMU {@code aio-max-batch})
 */
public record AioOptions(long pollMaxNs, long pollGrow, long pollShrink, int aioMaxBatch) {
    /** No busy polling, driver-chosen batches. */
    public static final AioOptions DEFAULT = new AioOptions(0, 0, 0, 0);

    public AioOptions {
        if (pollMaxNs < 0) {
            throw new IllegalArgumentException("poll-max-ns must be >= 0, got " + pollMaxNs);
        }
        if (pollGrow < 0 || pollShrink < 0) {
            throw new IllegalArgumentException("poll-grow and poll-shrink must be >= 0");
        }
        if (aioMaxBatch < 0 || aioMaxBatch > 1024) {
            // 1024 is the engine's ring size; a batch can never exceed the slots in flight.
            throw new IllegalArgumentException("aio-max-batch must be 0..1024, got " + aioMaxBatch);
        }
    }

    public static AioOptions polling(long pollMaxNs) {
        return new AioOptions(pollMaxNs, 0, 0, 0);
    }

    public AioOptions withAioMaxBatch(int batch) {
        return new AioOptions(pollMaxNs, pollGrow, pollShrink, batch);
    }

    long growFactor() {
        return pollGrow == 0 ? 2 : pollGrow;
    }
}
