package io.vblk.aio.sys;

/**
 * Any thread. Addresses passed as {@code long} must point at memory the caller keeps alive for
 * the call.
 *
 * <p>Shared memory: memfd_create(2), mmap(2), munmap(2) (guest RAM, mapped guest-memory fds).
 * Every call returns its result or {@code -errno} (EAGAIN is a value, not an exception) and
 * retries EINTR itself; x86_64 Linux values. Part of the system-call facade: see the package overview.
 */
public final class Mmap {
    private Mmap() {
    }

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
}
