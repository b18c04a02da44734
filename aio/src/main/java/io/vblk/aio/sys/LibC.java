package io.vblk.aio.sys;

import com.sun.jna.Native;
import com.sun.jna.NativeLibrary;
import com.sun.jna.Platform;

/**
 * Any thread.
 *
 * <p>JNA direct mappings of the set-up-time C library calls behind {@link io.vblk.aio.sys system-call facade}. Pointer arguments are
 * plain {@code long} addresses so nothing is wrapped; errno is read with
 * {@link Native#getLastError()}, which JNA saves after every call on the calling thread.
 */
final class LibC {
    static {
        Native.register(LibC.class, NativeLibrary.getInstance(Platform.C_LIBRARY_NAME));
    }

    private LibC() {
    }

    // open(2) is variadic; the integer mode argument is passed the same way on x86_64/aarch64.
    static native int open(String path, int flags, int mode);

    static native int close(int fd);

    static native int fsync(int fd);

    static native int fdatasync(int fd);

    static native int fallocate(int fd, int mode, long offset, long len);

    static native int ftruncate(int fd, long len);

    static native long lseek(int fd, long offset, int whence);

    static native int fstat(int fd, long statbuf);

    static native int statx(int dirfd, String path, int flags, int mask, long buf);

    static native int ioctl(int fd, long request, long arg);

    static native int unlink(String path);

    static native int chmod(String path, int mode);

    static native int eventfd(int initval, int flags);

    static native int memfd_create(String name, int flags);

    static native long mmap(long addr, long len, int prot, int flags, int fd, long off);

    static native int munmap(long addr, long len);

    // syscall(2) is variadic; integer arguments go in the same registers as a fixed prototype.
    static native long syscall(long nr, long a1, long a2);

    static native int socket(int domain, int type, int protocol);

    static native int bind(int fd, long addr, int addrlen);

    static native int listen(int fd, int backlog);

    static native int connect(int fd, long addr, int addrlen);

    static native int setsockopt(int fd, int level, int name, long value, int len);

    static native int getsockname(int fd, long addr, long addrlenPtr);

    static native int socketpair(int domain, int type, int protocol, int[] sv);

    // fcntl(2) is variadic; an int third argument is passed as a fixed one would be.
    static native int fcntl(int fd, int cmd, int arg);

    static native int dup(int fd);

    /** {@code -errno} of the last call on this thread. */
    static int err() {
        return -Native.getLastError();
    }
}
