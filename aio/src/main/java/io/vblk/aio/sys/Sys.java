package io.vblk.aio.sys;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Any thread. Addresses passed as {@code long} must point at memory the caller keeps alive for
 * the call.
 *
 * <p>The one door to the Linux system calls vblk makes (x86_64 Linux). Every call returns its result
 * or {@code -errno}: failures, EAGAIN included, are values, never exceptions (STYLE rule 10).
 * Calls interrupted by a signal (EINTR) are retried here, so callers never see -EINTR.
 *
 * <p>Two bindings, chosen by cost: calls made per request or per wake-up (eventfd read/write,
 * {@code io_submit}, {@code io_getevents}, {@code pread[v]}/{@code pwrite[v]}, {@code read}/{@code
 * write}, {@code recvmsg}/{@code sendmsg}, {@code accept4}, {@code poll}) are FFM downcalls
 * ({@link Downcalls}) using a per-thread scratch area for errno and small structures, so they
 * allocate nothing (the request-path ones learn errno by repeating a failed call with errno
 * captured, see {@link Downcalls}); set-up calls (open, mmap, io_setup, sockets, ...) go through JNA direct
 * mapping ({@link LibC}).
 */
public final class Sys {
    // fcntl.h, x86_64 values (octal as in the kernel's asm-generic/fcntl.h).
    public static final int O_RDONLY = 0;
    public static final int O_WRONLY = 01;
    public static final int O_RDWR = 02;
    public static final int O_CREAT = 0100;
    public static final int O_EXCL = 0200;
    public static final int O_TRUNC = 01000;
    public static final int O_APPEND = 02000;
    public static final int O_NONBLOCK = 04000;
    public static final int O_DSYNC = 010000;
    /** x86_64 value; aarch64 uses 0200000. */
    public static final int O_DIRECT = 040000;
    public static final int O_CLOEXEC = 02000000;

    public static final int F_GETFL = 3;
    public static final int F_SETFL = 4;

    // sys/eventfd.h
    public static final int EFD_SEMAPHORE = 1;
    public static final int EFD_NONBLOCK = O_NONBLOCK;
    public static final int EFD_CLOEXEC = O_CLOEXEC;

    // sys/mman.h, linux/memfd.h
    public static final int MFD_CLOEXEC = 1;
    public static final int MFD_ALLOW_SEALING = 2;
    public static final int PROT_NONE = 0;
    public static final int PROT_READ = 1;
    public static final int PROT_WRITE = 2;
    public static final int MAP_SHARED = 0x01;
    public static final int MAP_PRIVATE = 0x02;
    public static final int MAP_ANONYMOUS = 0x20;
    public static final int MAP_POPULATE = 0x8000;

    // linux/falloc.h
    public static final int FALLOC_FL_KEEP_SIZE = 0x01;
    public static final int FALLOC_FL_PUNCH_HOLE = 0x02;
    public static final int FALLOC_FL_ZERO_RANGE = 0x10;

    // poll.h
    public static final int POLLIN = 0x001;
    public static final int POLLOUT = 0x004;
    public static final int POLLERR = 0x008;
    public static final int POLLHUP = 0x010;
    public static final int POLLNVAL = 0x020;

    // sys/socket.h
    public static final int AF_UNIX = 1;
    public static final int SOCK_STREAM = 1;
    public static final int SOCK_NONBLOCK = O_NONBLOCK;
    public static final int SOCK_CLOEXEC = O_CLOEXEC;
    public static final int MSG_CTRUNC = 0x08;
    public static final int MSG_DONTWAIT = 0x40;
    public static final int MSG_NOSIGNAL = 0x4000;
    public static final int MSG_CMSG_CLOEXEC = 0x40000000;

    // linux/fs.h: _IOR(0x12, 114, size_t) and _IO(0x12, 104)
    public static final long BLKGETSIZE64 = 0x80081272L;
    public static final long BLKSSZGET = 0x1268L;

    // arch/x86/entry/syscalls/syscall_64.tbl
    public static final long SYS_IO_SETUP = 206;
    public static final long SYS_IO_DESTROY = 207;
    public static final long SYS_IO_GETEVENTS = 208;
    public static final long SYS_IO_SUBMIT = 209;

    /** Largest {@code len} one {@code read}/{@code write} moves on Linux (MAX_RW_COUNT, 2 GiB - 4 KiB). */
    public static final long MAX_RW_COUNT = 0x7ffff000L;

    /*
     * Per-thread scratch: errno capture for the FFM handles plus room for the small structures the
     * hot calls pass by pointer. Offsets:
     *   0  eventfd value (8)      8  pollfd (8)      16  iovec (16)
     *  32  msghdr (56)           96  control buffer (CONTROL_BYTES = 48)
     */
    private static final int SCR_EVENTFD = 0;
    private static final int SCR_POLLFD = 8;
    private static final int SCR_IOVEC = 16;
    private static final int SCR_MSGHDR = 32;
    private static final int SCR_CONTROL = 96;
    private static final int SCR_BYTES = SCR_CONTROL + MsgHdrLayout.CONTROL_BYTES;

    private static final class Scratch {
        final MemorySegment capture;
        final MemorySegment mem;
        final long base;

        Scratch() {
            Arena arena = Arena.ofAuto(); // freed with the thread's Scratch
            capture = arena.allocate(Downcalls.CAPTURE_LAYOUT);
            mem = arena.allocate(SCR_BYTES, 16);
            base = mem.address();
        }

        int errno() {
            return capture.get(ValueLayout.JAVA_INT, Downcalls.ERRNO_OFFSET);
        }
    }

    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    private Sys() {
    }

    private static AssertionError linkFailure(Throwable t) {
        return new AssertionError("native downcall failed to run", t);
    }

    // ---------------------------------------------------------------- files (JNA, set-up)

    /** {@code open(2)}: fd or -errno. */
    public static int open(String path, int flags, int mode) {
        int fd;
        do {
            fd = LibC.open(path, flags, mode);
        } while (fd < 0 && LibC.err() == -Errno.EINTR);
        return fd < 0 ? LibC.err() : fd;
    }

    /** {@code close(2)}: 0 or -errno. Not retried on EINTR (Linux has released the fd by then). */
    public static int close(int fd) {
        return LibC.close(fd) < 0 ? LibC.err() : 0;
    }

    public static int fsync(int fd) {
        int r;
        do {
            r = LibC.fsync(fd) < 0 ? LibC.err() : 0;
        } while (r == -Errno.EINTR);
        return r;
    }

    public static int fdatasync(int fd) {
        int r;
        do {
            r = LibC.fdatasync(fd) < 0 ? LibC.err() : 0;
        } while (r == -Errno.EINTR);
        return r;
    }

    /** {@code fallocate(2)} with {@code FALLOC_FL_*} {@code mode}: 0 or -errno (-EOPNOTSUPP when the file system lacks the mode). */
    public static int fallocate(int fd, int mode, long off, long len) {
        int r;
        do {
            r = LibC.fallocate(fd, mode, off, len) < 0 ? LibC.err() : 0;
        } while (r == -Errno.EINTR);
        return r;
    }

    public static int ftruncate(int fd, long len) {
        int r;
        do {
            r = LibC.ftruncate(fd, len) < 0 ? LibC.err() : 0;
        } while (r == -Errno.EINTR);
        return r;
    }

    /** Size in bytes of a regular file or a block device ({@code BLKGETSIZE64}), or -errno. */
    public static long fileSize(int fd) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment st = a.allocate(StatLayout.BYTES, 8);
            if (LibC.fstat(fd, st.address()) < 0) {
                return LibC.err();
            }
            int mode = st.get(ValueLayout.JAVA_INT, StatLayout.ST_MODE);
            if ((mode & StatLayout.S_IFMT) == StatLayout.S_IFBLK) {
                MemorySegment size = a.allocate(8, 8);
                if (LibC.ioctl(fd, BLKGETSIZE64, size.address()) < 0) {
                    return LibC.err();
                }
                return size.get(ValueLayout.JAVA_LONG, 0);
            }
            return st.get(ValueLayout.JAVA_LONG, StatLayout.ST_SIZE);
        }
    }

    /** True when {@code fd} is a block device; false for anything else or a bad fd. */
    public static boolean isBlockDevice(int fd) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment st = a.allocate(StatLayout.BYTES, 8);
            return LibC.fstat(fd, st.address()) == 0
                    && (st.get(ValueLayout.JAVA_INT, StatLayout.ST_MODE) & StatLayout.S_IFMT) == StatLayout.S_IFBLK;
        }
    }

    /**
     * Direct-I/O alignment of an open file from {@code statx(STATX_DIOALIGN)} (Linux 6.1+):
     * {@code (memAlign << 32) | offsetAlign}, 0 when the kernel or file system does not report it
     * (direct I/O unsupported, or an older kernel), or -errno.
     */
    public static long dioAlignment(int fd) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment stx = a.allocate(StatxLayout.BYTES, 8);
            if (LibC.statx(fd, "", StatxLayout.AT_EMPTY_PATH, StatxLayout.STATX_DIOALIGN, stx.address()) < 0) {
                return LibC.err();
            }
            if ((stx.get(ValueLayout.JAVA_INT, StatxLayout.STX_MASK) & StatxLayout.STATX_DIOALIGN) == 0) {
                return 0;
            }
            long mem = stx.get(ValueLayout.JAVA_INT, StatxLayout.STX_DIO_MEM_ALIGN) & 0xffffffffL;
            long off = stx.get(ValueLayout.JAVA_INT, StatxLayout.STX_DIO_OFFSET_ALIGN) & 0xffffffffL;
            return (mem << 32) | off;
        }
    }

    /** Logical sector size of a block device ({@code BLKSSZGET}), or -errno (-ENOTTY for a regular file). */
    public static int logicalBlockSize(int fd) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(4, 4);
            if (LibC.ioctl(fd, BLKSSZGET, v.address()) < 0) {
                return LibC.err();
            }
            return v.get(ValueLayout.JAVA_INT, 0);
        }
    }

    public static int unlink(String path) {
        return LibC.unlink(path) < 0 ? LibC.err() : 0;
    }

    public static int dup(int fd) {
        int r = LibC.dup(fd);
        return r < 0 ? LibC.err() : r;
    }

    /** Sets or clears O_NONBLOCK: 0 or -errno. */
    public static int setNonBlocking(int fd, boolean on) {
        int fl = LibC.fcntl(fd, F_GETFL, 0);
        if (fl < 0) {
            return LibC.err();
        }
        int nfl = on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
        if (nfl != fl && LibC.fcntl(fd, F_SETFL, nfl) < 0) {
            return LibC.err();
        }
        return 0;
    }

    // ---------------------------------------------------------------- read/write (FFM, hot)

    /** {@code read(2)}: bytes read (0 at end of file) or -errno. */
    public static long read(int fd, long addr, long len) {
        try {
            long r = (long) Downcalls.READ_FAST.invokeExact(fd, addr, len);
            if (r >= 0) {
                return r;
            }
            Scratch s = SCRATCH.get();
            do {
                r = (long) Downcalls.READ.invokeExact(s.capture, fd, addr, len);
            } while (r < 0 && s.errno() == Errno.EINTR);
            return r < 0 ? -s.errno() : r;
        } catch (Throwable t) {
            throw linkFailure(t);
        }
    }

    /** {@code write(2)}: bytes written or -errno. */
    public static long write(int fd, long addr, long len) {
        try {
            long r = (long) Downcalls.WRITE_FAST.invokeExact(fd, addr, len);
            if (r >= 0) {
                return r;
            }
            Scratch s = SCRATCH.get();
            do {
                r = (long) Downcalls.WRITE.invokeExact(s.capture, fd, addr, len);
            } while (r < 0 && s.errno() == Errno.EINTR);
            return r < 0 ? -s.errno() : r;
        } catch (Throwable t) {
            throw linkFailure(t);
        }
    }

    /** {@code pread(2)}: bytes read or -errno. */
    public static long pread(int fd, long addr, long len, long off) {
        try {
            long r = (long) Downcalls.PREAD_FAST.invokeExact(fd, addr, len, off);
            if (r >= 0) {
                return r;
            }
            Scratch s = SCRATCH.get();
            do {
                r = (long) Downcalls.PREAD.invokeExact(s.capture, fd, addr, len, off);
            } while (r < 0 && s.errno() == Errno.EINTR);
            return r < 0 ? -s.errno() : r;
        } catch (Throwable t) {
            throw linkFailure(t);
        }
    }

    /** {@code pwrite(2)}: bytes written or -errno. */
    public static long pwrite(int fd, long addr, long len, long off) {
        try {
            long r = (long) Downcalls.PWRITE_FAST.invokeExact(fd, addr, len, off);
            if (r >= 0) {
                return r;
            }
            Scratch s = SCRATCH.get();
            do {
                r = (long) Downcalls.PWRITE.invokeExact(s.capture, fd, addr, len, off);
            } while (r < 0 && s.errno() == Errno.EINTR);
            return r < 0 ? -s.errno() : r;
        } catch (Throwable t) {
            throw linkFailure(t);
        }
    }

    /** {@code preadv(2)} over {@code iovcnt} {@code struct iovec} at {@code iovAddr}: bytes read or -errno. */
    public static long preadv(int fd, long iovAddr, int iovcnt, long off) {
        try {
            long r = (long) Downcalls.PREADV_FAST.invokeExact(fd, iovAddr, iovcnt, off);
            if (r >= 0) {
                return r;
            }
            Scratch s = SCRATCH.get();
            do {
                r = (long) Downcalls.PREADV.invokeExact(s.capture, fd, iovAddr, iovcnt, off);
            } while (r < 0 && s.errno() == Errno.EINTR);
            return r < 0 ? -s.errno() : r;
        } catch (Throwable t) {
            throw linkFailure(t);
        }
    }

    /** {@code pwritev(2)}: bytes written or -errno. */
    public static long pwritev(int fd, long iovAddr, int iovcnt, long off) {
        try {
            long r = (long) Downcalls.PWRITEV_FAST.invokeExact(fd, iovAddr, iovcnt, off);
            if (r >= 0) {
                return r;
            }
            Scratch s = SCRATCH.get();
            do {
                r = (long) Downcalls.PWRITEV.invokeExact(s.capture, fd, iovAddr, iovcnt, off);
            } while (r < 0 && s.errno() == Errno.EINTR);
            return r < 0 ? -s.errno() : r;
        } catch (Throwable t) {
            throw linkFailure(t);
        }
    }

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
        Scratch s = SCRATCH.get();
        long r = read(fd, s.base + SCR_EVENTFD, 8);
        if (r < 0) {
            return r;
        }
        return r == 8 ? s.mem.get(ValueLayout.JAVA_LONG, SCR_EVENTFD) : -Errno.EIO;
    }

    /** Adds {@code value} to an eventfd counter: 0, or -EAGAIN if it would overflow a non-blocking eventfd. */
    public static int eventfdWrite(int fd, long value) {
        Scratch s = SCRATCH.get();
        s.mem.set(ValueLayout.JAVA_LONG, SCR_EVENTFD, value);
        long r = write(fd, s.base + SCR_EVENTFD, 8);
        return r < 0 ? (int) r : 0;
    }

    // ---------------------------------------------------------------- memory

    /** {@code memfd_create(2)} (glibc wrapper): fd or -errno. */
    public static int memfdCreate(String name, int flags) {
        int fd = LibC.memfd_create(name, flags);
        return fd < 0 ? LibC.err() : fd;
    }

    /** {@code mmap(2)}: the mapping's address, or -errno. */
    public static long mmap(long addr, long len, int prot, int flags, int fd, long off) {
        long r = LibC.mmap(addr, len, prot, flags, fd, off);
        return r == -1L ? LibC.err() : r;
    }

    public static int munmap(long addr, long len) {
        return LibC.munmap(addr, len) < 0 ? LibC.err() : 0;
    }

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
            Scratch s = SCRATCH.get();
            do {
                r = (long) Downcalls.SYSCALL3.invokeExact(s.capture, SYS_IO_SUBMIT, ctx, (long) nr, iocbPtrs);
            } while (r < 0 && s.errno() == Errno.EINTR);
            return r < 0 ? -s.errno() : (int) r;
        } catch (Throwable t) {
            throw linkFailure(t);
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
            Scratch s = SCRATCH.get();
            do {
                r = (long) Downcalls.SYSCALL5.invokeExact(s.capture, SYS_IO_GETEVENTS, ctx, (long) min, (long) nr,
                        events, timeout);
            } while (r < 0 && s.errno() == Errno.EINTR);
            return r < 0 ? -s.errno() : (int) r;
        } catch (Throwable t) {
            throw linkFailure(t);
        }
    }

    // ---------------------------------------------------------------- UNIX sockets

    /** A listening AF_UNIX stream socket bound to {@code path}, non-blocking and close-on-exec: fd or -errno. */
    public static int unixListen(String path, int backlog) {
        int fd = LibC.socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            return LibC.err();
        }
        try (Arena a = Arena.ofConfined()) {
            MemorySegment sa = a.allocate(SockAddrUnLayout.BYTES, 8);
            int len = SockAddrUnLayout.write(sa, path);
            if (len < 0) {
                LibC.close(fd);
                return len;
            }
            if (LibC.bind(fd, sa.address(), len) < 0 || LibC.listen(fd, backlog) < 0) {
                int e = LibC.err();
                LibC.close(fd);
                return e;
            }
            return fd;
        }
    }

    /**
     * Connects an AF_UNIX stream socket (close-on-exec) to {@code path}; the connect itself blocks
     * (AF_UNIX connects complete at once unless the backlog is full), then the fd is made
     * non-blocking if asked. Returns the fd or -errno (-ENOENT, -ECONNREFUSED, ...).
     */
    public static int unixConnect(String path, boolean nonBlocking) {
        int fd = LibC.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            return LibC.err();
        }
        try (Arena a = Arena.ofConfined()) {
            MemorySegment sa = a.allocate(SockAddrUnLayout.BYTES, 8);
            int len = SockAddrUnLayout.write(sa, path);
            if (len < 0) {
                LibC.close(fd);
                return len;
            }
            int r;
            do {
                r = LibC.connect(fd, sa.address(), len) < 0 ? LibC.err() : 0;
            } while (r == -Errno.EINTR);
            if (r == 0 && nonBlocking) {
                r = setNonBlocking(fd, true);
            }
            if (r < 0) {
                LibC.close(fd);
                return r;
            }
            return fd;
        }
    }

    /** {@code accept4(2)} with SOCK_NONBLOCK|SOCK_CLOEXEC: the connection's fd, or -EAGAIN when none waits, or -errno. */
    public static int accept(int listenFd) {
        Scratch s = SCRATCH.get();
        try {
            int r;
            do {
                r = (int) Downcalls.ACCEPT4.invokeExact(s.capture, listenFd, 0L, 0L, SOCK_NONBLOCK | SOCK_CLOEXEC);
            } while (r < 0 && s.errno() == Errno.EINTR);
            return r < 0 ? -s.errno() : r;
        } catch (Throwable t) {
            throw linkFailure(t);
        }
    }

    /** A connected AF_UNIX stream pair (blocking, close-on-exec) into {@code sv[0..1]}: 0 or -errno. */
    public static int socketpair(int[] sv) {
        if (sv.length < 2) {
            return -Errno.EINVAL;
        }
        return LibC.socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ? LibC.err() : 0;
    }

    /**
     * {@code sendmsg(2)} of {@code len} bytes at {@code buf} with {@code fds[0..nfds)} attached as
     * SCM_RIGHTS, MSG_NOSIGNAL (a closed peer gives -EPIPE, not SIGPIPE). Returns bytes sent or
     * -errno; -EINVAL if {@code nfds} is outside 0..{@link ReceivedFds#MAX_FDS}.
     */
    public static long sendmsg(int fd, long buf, long len, int[] fds, int nfds) {
        if (nfds < 0 || nfds > ReceivedFds.MAX_FDS || (nfds > 0 && (fds == null || fds.length < nfds))) {
            return -Errno.EINVAL;
        }
        Scratch s = SCRATCH.get();
        MemorySegment m = s.mem;
        MsgHdrLayout.writeIovec(m, SCR_IOVEC, buf, len);
        long control = 0;
        long controlLen = 0;
        if (nfds > 0) {
            controlLen = MsgHdrLayout.cmsgSpace(4 * nfds);
            m.asSlice(SCR_CONTROL, controlLen).fill((byte) 0);
            m.set(ValueLayout.JAVA_LONG, SCR_CONTROL + MsgHdrLayout.CMSG_LEN_OFF, MsgHdrLayout.cmsgLen(4 * nfds));
            m.set(ValueLayout.JAVA_INT, SCR_CONTROL + MsgHdrLayout.CMSG_LEVEL, MsgHdrLayout.SOL_SOCKET);
            m.set(ValueLayout.JAVA_INT, SCR_CONTROL + MsgHdrLayout.CMSG_TYPE, MsgHdrLayout.SCM_RIGHTS);
            for (int i = 0; i < nfds; i++) {
                m.set(ValueLayout.JAVA_INT, SCR_CONTROL + MsgHdrLayout.CMSG_DATA + 4L * i, fds[i]);
            }
            control = s.base + SCR_CONTROL;
        }
        MsgHdrLayout.writeMsgHdr(m, SCR_MSGHDR, s.base + SCR_IOVEC, control, controlLen);
        try {
            long r;
            do {
                r = (long) Downcalls.SENDMSG.invokeExact(s.capture, fd, s.base + SCR_MSGHDR, MSG_NOSIGNAL);
            } while (r < 0 && s.errno() == Errno.EINTR);
            return r < 0 ? -s.errno() : r;
        } catch (Throwable t) {
            throw linkFailure(t);
        }
    }

    /**
     * {@code recvmsg(2)} into {@code len} bytes at {@code buf}, with MSG_CMSG_CLOEXEC. Fds that came
     * with the message land in {@code out} (cleared first); {@code out.truncated} is set when the
     * kernel reported MSG_CTRUNC (more than {@link ReceivedFds#MAX_FDS} were attached). Returns bytes
     * received (0 at end of stream), -EAGAIN on an empty non-blocking socket, or -errno.
     */
    public static long recvmsg(int fd, long buf, long len, ReceivedFds out) {
        out.clear();
        Scratch s = SCRATCH.get();
        MemorySegment m = s.mem;
        MsgHdrLayout.writeIovec(m, SCR_IOVEC, buf, len);
        MsgHdrLayout.writeMsgHdr(m, SCR_MSGHDR, s.base + SCR_IOVEC, s.base + SCR_CONTROL, MsgHdrLayout.CONTROL_BYTES);
        long r;
        try {
            do {
                r = (long) Downcalls.RECVMSG.invokeExact(s.capture, fd, s.base + SCR_MSGHDR, MSG_CMSG_CLOEXEC);
            } while (r < 0 && s.errno() == Errno.EINTR);
        } catch (Throwable t) {
            throw linkFailure(t);
        }
        if (r < 0) {
            return -s.errno();
        }
        out.truncated = (MsgHdrLayout.msgFlags(m, SCR_MSGHDR) & MSG_CTRUNC) != 0;
        long controlLen = MsgHdrLayout.controlLen(m, SCR_MSGHDR);
        long off = 0;
        // Walk the cmsgs as CMSG_FIRSTHDR/CMSG_NXTHDR do.
        while (off + MsgHdrLayout.CMSGHDR_BYTES <= controlLen) {
            long at = SCR_CONTROL + off;
            long cmsgLen = m.get(ValueLayout.JAVA_LONG, at + MsgHdrLayout.CMSG_LEN_OFF);
            if (cmsgLen < MsgHdrLayout.CMSGHDR_BYTES || off + cmsgLen > controlLen) {
                break;
            }
            if (m.get(ValueLayout.JAVA_INT, at + MsgHdrLayout.CMSG_LEVEL) == MsgHdrLayout.SOL_SOCKET
                    && m.get(ValueLayout.JAVA_INT, at + MsgHdrLayout.CMSG_TYPE) == MsgHdrLayout.SCM_RIGHTS) {
                int n = (int) ((cmsgLen - MsgHdrLayout.CMSGHDR_BYTES) / 4);
                for (int i = 0; i < n; i++) {
                    int rfd = m.get(ValueLayout.JAVA_INT, at + MsgHdrLayout.CMSG_DATA + 4L * i);
                    if (out.count < ReceivedFds.MAX_FDS) {
                        out.fds[out.count++] = rfd;
                    } else {
                        LibC.close(rfd); // cannot happen with CONTROL_BYTES of room; never leak
                        out.truncated = true;
                    }
                }
            }
            off += MsgHdrLayout.cmsgAlign((int) cmsgLen);
        }
        return r;
    }

    /**
     * {@code poll(2)} on one fd: its {@code revents} (non-zero), 0 on timeout, or -errno.
     * {@code timeoutMs} &lt; 0 waits forever.
     */
    public static int poll(int fd, int events, int timeoutMs) {
        Scratch s = SCRATCH.get();
        MemorySegment m = s.mem;
        // struct pollfd { int fd; short events; short revents; }  (poll.h, 8 bytes)
        m.set(ValueLayout.JAVA_INT, SCR_POLLFD, fd);
        m.set(ValueLayout.JAVA_SHORT, SCR_POLLFD + 4, (short) events);
        m.set(ValueLayout.JAVA_SHORT, SCR_POLLFD + 6, (short) 0);
        try {
            // Fast twin first (no errno capture, which allocates when not inlined); poll has no side
            // effects, so a failed call is simply made again with capture to learn errno.
            int r = (int) Downcalls.POLL_FAST.invokeExact(s.base + SCR_POLLFD, 1L, timeoutMs);
            while (r < 0) {
                r = (int) Downcalls.POLL.invokeExact(s.capture, s.base + SCR_POLLFD, 1L, timeoutMs);
                if (r >= 0 || s.errno() != Errno.EINTR) {
                    break;
                }
            }
            if (r < 0) {
                return -s.errno();
            }
            return r == 0 ? 0 : m.get(ValueLayout.JAVA_SHORT, SCR_POLLFD + 6) & 0xffff;
        } catch (Throwable t) {
            throw linkFailure(t);
        }
    }
}
