package io.vblk.aio.uring;

import io.vblk.aio.sys.Errno;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Home thread: the owning IoThread (of its {@link IoUring}). No locking.
 *
 * <p>The buffers registered with one ring (IORING_REGISTER_BUFFERS, io_uring_register(2)) and the
 * requests that use them. Registering pins the pages of each region once, so a request that names
 * a registered buffer by {@code buf_index} spares the kernel the per-request page lookup and pin
 * (get_user_pages) of READV/WRITEV: IORING_OP_READ_FIXED / WRITE_FIXED for one contiguous range,
 * and IORING_OP_READV_FIXED / WRITEV_FIXED (Linux 6.15) for an iovec array whose every segment lies
 * inside the one buffer. A kernel without the vectored opcodes completes them with -EINVAL (the
 * opcode is past IORING_OP_LAST: io_init_req in io_uring/io_uring.c), like any failed request.
 *
 * <p>Limits (io_uring/rsrc.c): a buffer is at most {@link #MAX_BUFFER_BYTES}, a ring holds at most
 * {@link #MAX_BUFFERS}; the pinned pages count against RLIMIT_MEMLOCK unless the process has
 * CAP_IPC_LOCK (io_account_mem). Memory must be pinnable for long (anonymous, memfd/shmem,
 * hugetlbfs; not a shared writable mapping of a regular file on a disk file system).
 *
 * <p>Results are those of {@link IoUring}: a short fixed read is resubmitted for its remainder,
 * as a READV is.
 */
public final class UringBuffers {
    // io_uring_register(2) opcodes (include/uapi/linux/io_uring.h enum io_uring_register_op).
    static final int IORING_REGISTER_BUFFERS = 0;
    static final int IORING_UNREGISTER_BUFFERS = 1;
    /** One registered buffer's limit: io_buffer_validate() refuses iov_len > SZ_1G with -EFAULT (io_uring/rsrc.c). */
    public static final long MAX_BUFFER_BYTES = 1L << 30;
    /** IORING_MAX_REG_BUFFERS (io_uring/rsrc.h): more are refused with -EINVAL. */
    public static final int MAX_BUFFERS = 1 << 14;

    private final IoUring ring;
    private final int ringFd;
    /** Start and end (exclusive) address of each registered buffer, by index; empty when none. */
    private long[] start = new long[0];
    private long[] end = new long[0];

    UringBuffers(IoUring ring, int ringFd) {
        this.ring = ring;
        this.ringFd = ringFd;
    }

    /**
     * Registers {@code regions} as buffers 0, 1, ... (IORING_REGISTER_BUFFERS with an iovec array).
     * The memory must stay mapped until {@link #unregister()} or the ring's close. Nothing may be in
     * flight. Returns 0 or -errno (-EBUSY when buffers are registered; -EFAULT for a region over
     * {@link #MAX_BUFFER_BYTES}; -ENOMEM over RLIMIT_MEMLOCK). Set-up, home thread.
     */
    public int register(MemorySegment... regions) {
        ring.context().assertHome();
        if (ring.inFlight() > 0 || start.length > 0) {
            return -Errno.EBUSY;
        }
        if (regions.length == 0 || regions.length > MAX_BUFFERS) {
            return -Errno.EINVAL;
        }
        int r;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment iov = a.allocate((long) UringSlots.IOVEC_BYTES * regions.length, 8);
            for (int i = 0; i < regions.length; i++) {
                iov.set(ValueLayout.JAVA_LONG, (long) UringSlots.IOVEC_BYTES * i, regions[i].address());
                iov.set(ValueLayout.JAVA_LONG, (long) UringSlots.IOVEC_BYTES * i + 8, regions[i].byteSize());
            }
            r = UringSyscalls.register(ringFd, IORING_REGISTER_BUFFERS, iov.address(), regions.length);
        }
        if (r < 0) {
            return r;
        }
        long[] s = new long[regions.length];
        long[] e = new long[regions.length];
        for (int i = 0; i < regions.length; i++) {
            s[i] = regions[i].address();
            e[i] = s[i] + regions[i].byteSize();
        }
        start = s;
        end = e;
        return 0;
    }

    /** Drops the registered buffers (IORING_UNREGISTER_BUFFERS). Nothing may be in flight. 0 or -errno. Home thread. */
    public int unregister() {
        ring.context().assertHome();
        if (start.length == 0) {
            return 0;
        }
        if (ring.inFlight() > 0) {
            return -Errno.EBUSY;
        }
        int r = UringSyscalls.register(ringFd, IORING_UNREGISTER_BUFFERS, 0, 0);
        if (r == 0) {
            start = new long[0];
            end = new long[0];
        }
        return r;
    }

    /** How many buffers are registered. */
    public int count() {
        return start.length;
    }

    /** The index of the registered buffer that holds {@code [addr, addr + len)}, or -1 (a scan: regions are few). */
    public int indexOf(long addr, long len) {
        for (int i = 0; i < start.length; i++) {
            if (addr >= start[i] && addr + len <= end[i]) {
                return i;
            }
        }
        return -1;
    }

    /**
     * {@code pread(fd, addr, len, offset)} into registered buffer {@code bufIndex}, which must hold
     * {@code [addr, addr + len)} (else the request completes with -EFAULT). As the ring's {@code prepare*}.
     */
    public boolean prepareReadFixed(int fd, long addr, int len, long offset, int bufIndex, Object request) {
        return ring.take(SqeLayout.IORING_OP_READ_FIXED, fd, addr, len, offset, bufIndex, 0, request);
    }

    /** {@code pwrite(fd, addr, len, offset)} from registered buffer {@code bufIndex}; {@code rwFlags} as pwritev2's. */
    public boolean prepareWriteFixed(int fd, long addr, int len, long offset, int bufIndex, int rwFlags,
                                     Object request) {
        return ring.take(SqeLayout.IORING_OP_WRITE_FIXED, fd, addr, len, offset, bufIndex, rwFlags, request);
    }

    /**
     * {@code preadv(fd, iov, iovcnt, offset)} whose segments all lie in registered buffer
     * {@code bufIndex} (IORING_OP_READV_FIXED, Linux 6.15; -EINVAL before). The iovec array must
     * stay valid until completion.
     */
    public boolean prepareReadvFixed(int fd, long iovAddr, int iovcnt, long offset, int bufIndex, Object request) {
        return ring.take(SqeLayout.IORING_OP_READV_FIXED, fd, iovAddr, iovcnt, offset, bufIndex, 0, request);
    }

    /** {@code pwritev2(fd, iov, iovcnt, offset, rwFlags)} from registered buffer {@code bufIndex} (WRITEV_FIXED, 6.15). */
    public boolean prepareWritevFixed(int fd, long iovAddr, int iovcnt, long offset, int bufIndex, int rwFlags,
                                      Object request) {
        return ring.take(SqeLayout.IORING_OP_WRITEV_FIXED, fd, iovAddr, iovcnt, offset, bufIndex, rwFlags, request);
    }
}
