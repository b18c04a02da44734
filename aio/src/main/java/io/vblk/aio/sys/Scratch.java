package io.vblk.aio.sys;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Home thread: the thread that got it from {@link #get()}; one per thread, never shared.
 *
 * <p>Per-thread scratch of the system-call facade: errno capture for the FFM handles plus room for
 * the small structures the hot calls pass by pointer, so that those calls allocate nothing. Offsets:
 * <pre>
 *   0  eventfd value (8)      8  pollfd (8)      16  iovec (16)
 *  32  msghdr (56)           96  control buffer (CONTROL_BYTES = 48)
 * </pre>
 */
final class Scratch {
    static final int SCR_EVENTFD = 0;
    static final int SCR_POLLFD = 8;
    static final int SCR_IOVEC = 16;
    static final int SCR_MSGHDR = 32;
    static final int SCR_CONTROL = 96;
    static final int SCR_BYTES = SCR_CONTROL + MsgHdrLayout.CONTROL_BYTES;

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    final MemorySegment capture;
    final MemorySegment mem;
    final long base;

    private Scratch() {
        Arena arena = Arena.ofAuto(); // freed with the thread's Scratch
        capture = arena.allocate(Downcalls.CAPTURE_LAYOUT);
        mem = arena.allocate(SCR_BYTES, 16);
        base = mem.address();
    }

    /** This thread's scratch. */
    static Scratch get() {
        return SCRATCH.get();
    }

    /** errno saved by the last capturing call made with {@link #capture}. */
    int errno() {
        return capture.get(ValueLayout.JAVA_INT, Downcalls.ERRNO_OFFSET);
    }

    static AssertionError linkFailure(Throwable t) {
        return new AssertionError("native downcall failed to run", t);
    }
}
