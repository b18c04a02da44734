package io.vblk.aio.sys;

import java.lang.foreign.ValueLayout;

/**
 * Any thread. Addresses passed as {@code long} must point at memory the caller keeps alive for
 * the call.
 *
 * <p>eventfd(2): create, read and write the counters that carry kicks, calls and completions.
 * Every call returns its result or {@code -errno} (EAGAIN is a value, not an exception) and
 * retries EINTR itself; x86_64 Linux values. Part of the system-call facade: see the package overview.
 */
public final class EventFds {
    private EventFds() {
    }

    // sys/eventfd.h
    public static final int EFD_SEMAPHORE = 1;
    public static final int EFD_NONBLOCK = FileIo.O_NONBLOCK;
    public static final int EFD_CLOEXEC = FileIo.O_CLOEXEC;

    // ---------------------------------------------------------------- eventfd

    /** {@code eventfd(2)}: fd or -errno. */
    public static int eventfd(int initval, int flags) {
        int fd = LibC.eventfd(initval, flags);
        return fd < 0 ? LibC.err() : fd;
    }

    /**
     * Reads (and resets, unless EFD_SEMAPHORE) an eventfd counter: the value, or -EAGAIN when a
     * non-blocking eventfd is zero, or another -errno. The counter never exceeds 2^64-2; values of
     * 2^63 and more would read as negative, which no user of vblk's eventfds comes near.
     */
    public static long eventfdRead(int fd) {
        Scratch s = Scratch.get();
        long r = FileIo.read(fd, s.base + Scratch.SCR_EVENTFD, 8);
        if (r < 0) {
            return r;
        }
        return r == 8 ? s.mem.get(ValueLayout.JAVA_LONG, Scratch.SCR_EVENTFD) : -Errno.EIO;
    }

    /** Adds {@code value} to an eventfd counter: 0, or -EAGAIN if it would overflow a non-blocking eventfd. */
    public static int eventfdWrite(int fd, long value) {
        Scratch s = Scratch.get();
        s.mem.set(ValueLayout.JAVA_LONG, Scratch.SCR_EVENTFD, value);
        long r = FileIo.write(fd, s.base + Scratch.SCR_EVENTFD, 8);
        return r < 0 ? (int) r : 0;
    }
}
