package io.vblk.aio.sys;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Any thread. Addresses passed as {@code long} must point at memory the caller keeps alive for
 * the call.
 *
 * <p>Linux native AIO: io_setup(2), io_destroy(2), io_submit(2) (FFM, request path), io_getevents(2).
 * Every call returns its result or {@code -errno} (EAGAIN is a value, not an exception) and
 * retries EINTR itself; x86_64 Linux values. Part of the system-call facade: see the package overview.
 */
public final class AioCalls {
    private AioCalls() {
    }

    // arch/x86/entry/syscalls/syscall_64.tbl
    public static final long SYS_IO_SETUP = 206;
    public static final long SYS_IO_DESTROY = 207;
    public static final long SYS_IO_GETEVENTS = 208;
    public static final long SYS_IO_SUBMIT = 209;

    // ---------------------------------------------------------------- Linux native AIO

    /**
     * {@code io_setup(2)}: a new AIO context able to hold {@code nr} requests in flight; returns
     * its id (the user address of its completion ring) or -errno (-EAGAIN when
     * /proc/sys/fs/aio-max-nr would be exceeded).
     */
    public static long ioSetup(int nr) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment ctxp = a.allocate(8, 8); // zeroed: io_setup requires *ctxp == 0
            long r = LibC.syscall(SYS_IO_SETUP, nr, ctxp.address());
            return r < 0 ? LibC.err() : ctxp.get(ValueLayout.JAVA_LONG, 0);
        }
    }

    public static int ioDestroy(long ctx) {
        long r;
        do {
            r = LibC.syscall(SYS_IO_DESTROY, ctx, 0);
        } while (r < 0 && LibC.err() == -Errno.EINTR);
        return r < 0 ? LibC.err() : 0;
    }

    /**
     * {@code io_submit(2)} of {@code nr} iocbs whose addresses are the {@code long}s at {@code iocbPtrs}:
     * how many were accepted (the rest were not submitted) or -errno for the first one.
     */
    public static int ioSubmit(long ctx, int nr, long iocbPtrs) {
        try {
            long r = (long) Downcalls.SYSCALL3_FAST.invokeExact(SYS_IO_SUBMIT, ctx, (long) nr, iocbPtrs);
            if (r >= 0) {
                return (int) r;
            }
            // Nothing was submitted: ask again with errno captured (it may now succeed).
            Scratch s = Scratch.get();
            do {
                r = (long) Downcalls.SYSCALL3.invokeExact(s.capture, SYS_IO_SUBMIT, ctx, (long) nr, iocbPtrs);
            } while (r < 0 && s.errno() == Errno.EINTR);
            return r < 0 ? -s.errno() : (int) r;
        } catch (Throwable t) {
            throw Scratch.linkFailure(t);
        }
    }

    /**
     * {@code io_getevents(2)}: waits for at least {@code min} completions (up to {@code nr}) into the
     * {@code struct io_event} array at {@code events}; {@code timeout} is a {@code struct timespec}
     * address or 0 for no limit. Returns the count or -errno.
     */
    public static int ioGetevents(long ctx, int min, int nr, long events, long timeout) {
        try {
            long r = (long) Downcalls.SYSCALL5_FAST.invokeExact(SYS_IO_GETEVENTS, ctx, (long) min, (long) nr,
                    events, timeout);
            if (r >= 0) {
                return (int) r;
            }
            Scratch s = Scratch.get();
            do {
                r = (long) Downcalls.SYSCALL5.invokeExact(s.capture, SYS_IO_GETEVENTS, ctx, (long) min, (long) nr,
                        events, timeout);
            } while (r < 0 && s.errno() == Errno.EINTR);
            return r < 0 ? -s.errno() : (int) r;
        } catch (Throwable t) {
            throw Scratch.linkFailure(t);
        }
    }
}
