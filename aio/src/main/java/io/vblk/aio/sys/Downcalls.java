package io.vblk.aio.sys;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * Any thread.
 *
 * <p>FFM downcall handles for the calls {@link io.vblk.aio.sys system-call facade} makes on the request path (about 5 ns of
 * overhead each against about 90 ns for JNA direct mapping, measured on JDK 25 with a libc
 * {@code labs} call; the JMH benchmark {@code EngineBenchmark} compares a real eventfd write and
 * io_getevents both ways: {@code scripts/jmh.sh 'EngineBenchmark.(eventfdWrite|ioGetevents)'}).
 * The capturing handles save errno into a per-thread segment
 * ({@link Linker.Option#captureCallState}), which becomes the handle's first parameter; the
 * {@code *_FAST} twins do not (see there). Pointer parameters are declared {@code JAVA_LONG}: on
 * LP64 Linux a pointer and a {@code long} travel in the same integer register, and a plain address
 * needs no {@code MemorySegment} object per call.
 */
@SuppressWarnings("restricted") // downcall handles; native access is enabled for vblk
final class Downcalls {
    private static final Linker LINKER = Linker.nativeLinker();
    private static final SymbolLookup LIBC = LINKER.defaultLookup();
    private static final Linker.Option ERRNO = Linker.Option.captureCallState("errno");

    static final StructLayout CAPTURE_LAYOUT = Linker.Option.captureStateLayout();
    static final long ERRNO_OFFSET =
            CAPTURE_LAYOUT.byteOffset(MemoryLayout.PathElement.groupElement("errno"));

    /** ssize_t read(int fd, void *buf, size_t count) */
    static final MethodHandle READ = handle("read", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_LONG));
    /** ssize_t write(int fd, const void *buf, size_t count) */
    static final MethodHandle WRITE = handle("write", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_LONG));
    /** ssize_t pread(int fd, void *buf, size_t count, off_t offset) */
    static final MethodHandle PREAD = handle("pread",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG));
    /** ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset) */
    static final MethodHandle PWRITE = handle("pwrite",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG));
    /** ssize_t preadv(int fd, const struct iovec *iov, int iovcnt, off_t offset) */
    static final MethodHandle PREADV = handle("preadv",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_INT, JAVA_LONG));
    /** ssize_t pwritev(int fd, const struct iovec *iov, int iovcnt, off_t offset) */
    static final MethodHandle PWRITEV = handle("pwritev",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_INT, JAVA_LONG));
    /** ssize_t readv(int fd, const struct iovec *iov, int iovcnt) */
    static final MethodHandle READV = handle("readv", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_INT));
    /** ssize_t writev(int fd, const struct iovec *iov, int iovcnt) */
    static final MethodHandle WRITEV = handle("writev", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_INT));
    // The same request-path calls without errno capture: the capture argument is sliced per call
    // inside the JDK, which allocates wherever C2 does not inline the slice (a call site it sees
    // as infrequent, e.g. one io_submit per batch). The facade calls these first and repeats a failed
    // call through the capturing handle to learn errno: a failed call of these transferred
    // nothing, so repeating it is safe (if the repeat succeeds, its result is the result).
    static final MethodHandle READ_FAST = fast("read", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_LONG));
    static final MethodHandle READV_FAST = fast("readv", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_INT));
    static final MethodHandle WRITEV_FAST = fast("writev", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_INT));
    static final MethodHandle POLL_FAST = fast("poll", FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_INT));
    static final MethodHandle WRITE_FAST = fast("write", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_LONG));
    static final MethodHandle PREAD_FAST = fast("pread",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG));
    static final MethodHandle PWRITE_FAST = fast("pwrite",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_LONG));
    static final MethodHandle PREADV_FAST = fast("preadv",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_INT, JAVA_LONG));
    static final MethodHandle PWRITEV_FAST = fast("pwritev",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_INT, JAVA_LONG));
    static final MethodHandle SYSCALL3_FAST = LINKER.downcallHandle(LIBC.findOrThrow("syscall"),
            FunctionDescriptor.of(JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG),
            Linker.Option.firstVariadicArg(1));
    static final MethodHandle SYSCALL5_FAST = LINKER.downcallHandle(LIBC.findOrThrow("syscall"),
            FunctionDescriptor.of(JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG),
            Linker.Option.firstVariadicArg(1));

    /** ssize_t recvmsg(int fd, struct msghdr *msg, int flags) */
    static final MethodHandle RECVMSG = handle("recvmsg",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_INT));
    /** ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) */
    static final MethodHandle SENDMSG = handle("sendmsg",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_INT));
    /** int accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags) */
    static final MethodHandle ACCEPT4 = handle("accept4",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_INT));
    /** int poll(struct pollfd *fds, nfds_t nfds, int timeout) */
    static final MethodHandle POLL = handle("poll",
            FunctionDescriptor.of(JAVA_INT, JAVA_LONG, JAVA_LONG, JAVA_INT));
    /** long syscall(long nr, ...) with three integer arguments (io_submit). */
    static final MethodHandle SYSCALL3 = LINKER.downcallHandle(LIBC.findOrThrow("syscall"),
            FunctionDescriptor.of(JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG),
            ERRNO, Linker.Option.firstVariadicArg(1));
    /** long syscall(long nr, ...) with five integer arguments (io_getevents). */
    static final MethodHandle SYSCALL5 = LINKER.downcallHandle(LIBC.findOrThrow("syscall"),
            FunctionDescriptor.of(JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG),
            ERRNO, Linker.Option.firstVariadicArg(1));

    private Downcalls() {
    }

    private static MethodHandle fast(String name, FunctionDescriptor fd) {
        return LINKER.downcallHandle(LIBC.findOrThrow(name), fd);
    }

    private static MethodHandle handle(String name, FunctionDescriptor fd) {
        return LINKER.downcallHandle(LIBC.findOrThrow(name), fd, ERRNO);
    }
}
