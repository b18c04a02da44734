package io.vblk.aio.sys;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Any thread. Addresses passed as {@code long} must point at memory the caller keeps alive for
 * the call.
 *
 * <p>Files and block devices: open, sync, allocate, size and alignment queries (JNA, set-up), and
 * {@code read}/{@code write}/{@code pread[v]}/{@code pwrite[v]} (FFM, request path).
 * Every call returns its result or {@code -errno} (EAGAIN is a value, not an exception) and
 * retries EINTR itself; x86_64 Linux values. Part of the system-call facade: see the package overview.
 */
public final class FileIo {
    private FileIo() {
    }

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

    /** lseek(2) whence values for sparse files (Linux 3.1+): the next data, the next hole. */
    public static final int SEEK_DATA = 3;
    public static final int SEEK_HOLE = 4;

    public static final int F_GETFL = 3;
    public static final int F_SETFL = 4;

    // linux/falloc.h
    public static final int FALLOC_FL_KEEP_SIZE = 0x01;
    public static final int FALLOC_FL_PUNCH_HOLE = 0x02;
    public static final int FALLOC_FL_ZERO_RANGE = 0x10;

    // linux/fs.h: _IOR(0x12, 114, size_t) and _IO(0x12, 104)
    public static final long BLKGETSIZE64 = 0x80081272L;
    public static final long BLKSSZGET = 0x1268L;
    /** {@code _IO(0x12, 125)} (linux/fs.h): secure erase of a byte range, {@code uint64_t range[2]}. */
    public static final long BLKSECDISCARD = 0x127DL;

    /** Largest {@code len} one {@code read}/{@code write} moves on Linux (MAX_RW_COUNT, 2 GiB - 4 KiB). */
    public static final long MAX_RW_COUNT = 0x7ffff000L;

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

    /** lseek(2): the resulting offset, or -errno (ENXIO: no data at or after {@code off} with SEEK_DATA). */
    public static long lseek(int fd, long off, int whence) {
        long r = LibC.lseek(fd, off, whence);
        return r < 0 ? LibC.err() : r;
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

    /**
     * {@code ioctl(fd, BLKSECDISCARD, {offset, length})}: 0 or -errno. Blocks until the device has
     * erased the range (a worker's call). -EOPNOTSUPP when the device cannot (block/ioctl.c checks
     * that before the range), -ENOTTY for a regular file, -EBADF when not open for writing.
     */
    public static int secureDiscard(int fd, long offset, long length) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment range = a.allocate(16, 8);
            range.set(ValueLayout.JAVA_LONG, 0, offset);
            range.set(ValueLayout.JAVA_LONG, 8, length);
            int r;
            do {
                r = LibC.ioctl(fd, BLKSECDISCARD, range.address()) < 0 ? LibC.err() : 0;
            } while (r == -Errno.EINTR);
            return r;
        }
    }

    /**
     * Whether the block device behind {@code fd} takes BLKSECDISCARD, without erasing anything: the
     * kernel (block/ioctl.c blk_ioctl_secure_erase) answers -EOPNOTSUPP for a device without secure
     * erase before it checks the range, and -EINVAL for the misaligned range asked here otherwise.
     */
    public static boolean secureDiscardSupported(int fd) {
        return secureDiscard(fd, 1, 0) == -Errno.EINVAL;
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
            Scratch s = Scratch.get();
            do {
                r = (long) Downcalls.READ.invokeExact(s.capture, fd, addr, len);
            } while (r < 0 && s.errno() == Errno.EINTR);
            return r < 0 ? -s.errno() : r;
        } catch (Throwable t) {
            throw Scratch.linkFailure(t);
        }
    }

    /** {@code write(2)}: bytes written or -errno. */
    public static long write(int fd, long addr, long len) {
        try {
            long r = (long) Downcalls.WRITE_FAST.invokeExact(fd, addr, len);
            if (r >= 0) {
                return r;
            }
            Scratch s = Scratch.get();
            do {
                r = (long) Downcalls.WRITE.invokeExact(s.capture, fd, addr, len);
            } while (r < 0 && s.errno() == Errno.EINTR);
            return r < 0 ? -s.errno() : r;
        } catch (Throwable t) {
            throw Scratch.linkFailure(t);
        }
    }

    /** {@code pread(2)}: bytes read or -errno. */
    public static long pread(int fd, long addr, long len, long off) {
        try {
            long r = (long) Downcalls.PREAD_FAST.invokeExact(fd, addr, len, off);
            if (r >= 0) {
                return r;
            }
            Scratch s = Scratch.get();
            do {
                r = (long) Downcalls.PREAD.invokeExact(s.capture, fd, addr, len, off);
            } while (r < 0 && s.errno() == Errno.EINTR);
            return r < 0 ? -s.errno() : r;
        } catch (Throwable t) {
            throw Scratch.linkFailure(t);
        }
    }

    /** {@code pwrite(2)}: bytes written or -errno. */
    public static long pwrite(int fd, long addr, long len, long off) {
        try {
            long r = (long) Downcalls.PWRITE_FAST.invokeExact(fd, addr, len, off);
            if (r >= 0) {
                return r;
            }
            Scratch s = Scratch.get();
            do {
                r = (long) Downcalls.PWRITE.invokeExact(s.capture, fd, addr, len, off);
            } while (r < 0 && s.errno() == Errno.EINTR);
            return r < 0 ? -s.errno() : r;
        } catch (Throwable t) {
            throw Scratch.linkFailure(t);
        }
    }

    /** {@code preadv(2)} over {@code iovcnt} {@code struct iovec} at {@code iovAddr}: bytes read or -errno. */
    public static long preadv(int fd, long iovAddr, int iovcnt, long off) {
        try {
            long r = (long) Downcalls.PREADV_FAST.invokeExact(fd, iovAddr, iovcnt, off);
            if (r >= 0) {
                return r;
            }
            Scratch s = Scratch.get();
            do {
                r = (long) Downcalls.PREADV.invokeExact(s.capture, fd, iovAddr, iovcnt, off);
            } while (r < 0 && s.errno() == Errno.EINTR);
            return r < 0 ? -s.errno() : r;
        } catch (Throwable t) {
            throw Scratch.linkFailure(t);
        }
    }

    /** {@code pwritev(2)}: bytes written or -errno. */
    public static long pwritev(int fd, long iovAddr, int iovcnt, long off) {
        try {
            long r = (long) Downcalls.PWRITEV_FAST.invokeExact(fd, iovAddr, iovcnt, off);
            if (r >= 0) {
                return r;
            }
            Scratch s = Scratch.get();
            do {
                r = (long) Downcalls.PWRITEV.invokeExact(s.capture, fd, iovAddr, iovcnt, off);
            } while (r < 0 && s.errno() == Errno.EINTR);
            return r < 0 ? -s.errno() : r;
        } catch (Throwable t) {
            throw Scratch.linkFailure(t);
        }
    }

    /** {@code readv(2)} (a socket or pipe): bytes read (0 at end of stream), -EAGAIN, or -errno. */
    public static long readv(int fd, long iovAddr, int iovcnt) {
        try {
            long r = (long) Downcalls.READV_FAST.invokeExact(fd, iovAddr, iovcnt);
            if (r >= 0) {
                return r;
            }
            Scratch s = Scratch.get();
            do {
                r = (long) Downcalls.READV.invokeExact(s.capture, fd, iovAddr, iovcnt);
            } while (r < 0 && s.errno() == Errno.EINTR);
            return r < 0 ? -s.errno() : r;
        } catch (Throwable t) {
            throw Scratch.linkFailure(t);
        }
    }

    /** {@code writev(2)} (a socket or pipe): bytes written, -EAGAIN, or -errno (-EPIPE: the JVM ignores SIGPIPE). */
    public static long writev(int fd, long iovAddr, int iovcnt) {
        try {
            long r = (long) Downcalls.WRITEV_FAST.invokeExact(fd, iovAddr, iovcnt);
            if (r >= 0) {
                return r;
            }
            Scratch s = Scratch.get();
            do {
                r = (long) Downcalls.WRITEV.invokeExact(s.capture, fd, iovAddr, iovcnt);
            } while (r < 0 && s.errno() == Errno.EINTR);
            return r < 0 ? -s.errno() : r;
        } catch (Throwable t) {
            throw Scratch.linkFailure(t);
        }
    }
}
