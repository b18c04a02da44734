package io.vblk.virtio.memory;

/**
 * Any thread: constants and a pure test.
 *
 * <p>A fault on guest memory: the front-end's memfd was truncated after it was mapped (or a region
 * reaches past its end), and the access raised SIGBUS, which the JVM turns into
 * {@code java.lang.InternalError: a fault occurred in an unsafe memory access operation}. It is a
 * guest error of the one device whose memory it is: that device enters NEEDS_RESET with a reason
 * starting {@link #REASON} and its connection closes; the loop thread and other devices go on.
 */
public final class GuestMemoryFault {
    /** The start of the NEEDS_RESET reason of a device whose guest memory faulted. */
    public static final String REASON = "guest memory fault";

    private GuestMemoryFault() {
    }

    /** True when {@code e} is the JVM's report of a fault on mapped memory (not another internal error). */
    public static boolean is(Throwable e) {
        return e instanceof InternalError && e.getMessage() != null && e.getMessage().contains("unsafe memory access");
    }

    /** Returns {@code e} when it is a guest memory fault; rethrows any other internal error. */
    public static InternalError check(InternalError e) {
        if (!is(e)) {
            throw e;
        }
        return e;
    }

    /** The NEEDS_RESET reason for a fault {@code where}. */
    public static String reason(String where, Throwable e) {
        return REASON + " in " + where + ": " + e.getMessage();
    }
}
