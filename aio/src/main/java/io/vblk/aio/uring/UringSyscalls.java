package io.vblk.aio.uring;

import io.vblk.aio.sys.Errno;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * Any thread. Addresses passed as {@code long} must point at memory the caller keeps alive for
 * the call.
 *
 * <p>The three io_uring system calls (numbers of arch/x86/entry/syscalls/syscall_64.tbl; aarch64
 * shares them through include/uapi/asm-generic/unistd.h), made through libc's {@code syscall(2)} as FFM downcalls; each returns its result or
 * {@code -errno} (STYLE rule 10). {@code io_uring_enter} is on the request path: its handle
 * captures no errno (FFM's capture allocates where the JIT does not inline it, see
 * {@code io.vblk.aio.sys.Downcalls}); a call that failed is repeated with errno captured. That
 * repeat is safe: io_uring_enter fails only when it consumed no SQE (it returns the count
 * consumed otherwise, io_uring/io_uring.c {@code SYSCALL_DEFINE6(io_uring_enter)}), and this
 * class never asks it to wait.
 */
@SuppressWarnings("restricted") // downcall handles; native access is enabled for vblk
final class UringSyscalls {
    /** syscall_64.tbl: 425 io_uring_setup, 426 io_uring_enter, 427 io_uring_register (Linux 5.1). */
    static final long SYS_IO_URING_SETUP = 425;
    static final long SYS_IO_URING_ENTER = 426;
    static final long SYS_IO_URING_REGISTER = 427;

    // io_uring_register(2) opcodes (io_uring.h enum).
    static final int IORING_REGISTER_FILES = 2;
    static final int IORING_UNREGISTER_FILES = 3;
    static final int IORING_REGISTER_EVENTFD = 4;

    private static final Linker LINKER = Linker.nativeLinker();
    private static final MemorySegment SYSCALL = LINKER.defaultLookup().findOrThrow("syscall");
    private static final StructLayout CAPTURE_LAYOUT = Linker.Option.captureStateLayout();
    private static final long ERRNO_OFFSET =
            CAPTURE_LAYOUT.byteOffset(MemoryLayout.PathElement.groupElement("errno"));

    /** long syscall(long nr, ...) with six integer arguments, no errno capture. */
    private static final MethodHandle SYSCALL6_FAST = LINKER.downcallHandle(SYSCALL,
            FunctionDescriptor.of(JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG),
            Linker.Option.firstVariadicArg(1));
    /** The same with errno captured into a segment passed first. */
    private static final MethodHandle SYSCALL6 = LINKER.downcallHandle(SYSCALL,
            FunctionDescriptor.of(JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG, JAVA_LONG),
            Linker.Option.captureCallState("errno"), Linker.Option.firstVariadicArg(1));

    private static final ThreadLocal<MemorySegment> CAPTURE =
            ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(CAPTURE_LAYOUT));

    private UringSyscalls() {
    }

    private static long call(long nr, long a, long b, long c, long d, long e, long f) {
        try {
            long r = (long) SYSCALL6_FAST.invokeExact(nr, a, b, c, d, e, f);
            if (r >= 0) {
                return r;
            }
            MemorySegment cap = CAPTURE.get();
            int errno;
            do {
                r = (long) SYSCALL6.invokeExact(cap, nr, a, b, c, d, e, f);
                errno = r < 0 ? cap.get(ValueLayout.JAVA_INT, ERRNO_OFFSET) : 0;
            } while (r < 0 && errno == Errno.EINTR);
            return r < 0 ? -errno : r;
        } catch (Throwable t) {
            throw new AssertionError("native downcall failed to run", t);
        }
    }

    /** {@code io_uring_setup(entries, params)}: the ring fd or -errno. Set-up. */
    static int setup(int entries, long params) {
        return (int) call(SYS_IO_URING_SETUP, entries, params, 0, 0, 0, 0);
    }

    /**
     * {@code io_uring_enter(fd, toSubmit, minComplete, flags, NULL, 0)}: SQEs consumed, or -errno
     * (-EAGAIN / -EBUSY: the kernel could not take more now; nothing was consumed).
     */
    static int enter(int fd, int toSubmit, int minComplete, int flags) {
        return (int) call(SYS_IO_URING_ENTER, fd, toSubmit, minComplete, flags, 0, 0);
    }

    /** {@code io_uring_register(fd, opcode, arg, nrArgs)}: 0 (or a count) or -errno. Set-up. */
    static int register(int fd, int opcode, long arg, int nrArgs) {
        return (int) call(SYS_IO_URING_REGISTER, fd, opcode, arg, nrArgs, 0, 0);
    }
}
