package io.vblk.aio.uring;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Home thread: the owning IoThread (of its {@link IoUring}). No locking.
 *
 * <p>The slot table of one ring: a slot is taken when a request is accepted and its index is the
 * SQE's {@code user_data}; it holds the request and its operation fields (primitive arrays, made
 * once) so the ring can write the SQE again for a resubmission, until the completion frees it.
 * Two FIFOs of slot indexes hold slots waiting for SQ room (resubmissions) and slots whose
 * submission failed (completed at the next reap). A short read's remaining iovecs go to a per-slot
 * area allocated at the slot's first short read and reused afterwards (QEMU's
 * {@code resubmit_qiov}), so steady state allocates nothing even when short reads repeat.
 */
final class UringSlots {
    /** {@code struct iovec} (include/uapi/linux/uio.h): u64 iov_base at 0, u64 iov_len at 8. */
    static final int IOVEC_BYTES = 16;
    /**
     * All of the address space, to read the caller's iovec arrays by address without making a
     * segment object per read (which would allocate wherever escape analysis gives up).
     */
    @SuppressWarnings("restricted")
    private static final MemorySegment ALL = MemorySegment.NULL.reinterpret(Long.MAX_VALUE);

    private final Arena arena;
    private final Object[] req;
    private final int[] op;
    private final int[] fd;
    private final long[] addr;
    private final int[] iovcnt;
    private final long[] offset;
    private final long[] length;
    private final int[] flags;
    /** READV: bytes read by earlier rounds of a short read. */
    private final long[] done;
    private final long[] failedResult;
    private final MemorySegment[] rest;
    private final int[] restCount;
    private final int[] free;
    private int freeTop;
    private final int[] resubmitQ;
    private int resubmitHead;
    private int resubmitCount;
    private final int[] failedQ;
    private int failedHead;
    private int failedCount;

    UringSlots(int n, Arena arena) {
        this.arena = arena;
        req = new Object[n];
        op = new int[n];
        fd = new int[n];
        addr = new long[n];
        iovcnt = new int[n];
        offset = new long[n];
        length = new long[n];
        flags = new int[n];
        done = new long[n];
        failedResult = new long[n];
        rest = new MemorySegment[n];
        restCount = new int[n];
        free = new int[n];
        for (int i = 0; i < n; i++) {
            free[i] = n - 1 - i; // slot 0 on top
        }
        freeTop = n;
        resubmitQ = new int[n];
        failedQ = new int[n];
    }

    int size() {
        return req.length;
    }

    boolean hasFree() {
        return freeTop > 0;
    }

    int free() {
        return freeTop;
    }

    int inUse() {
        return req.length - freeTop;
    }

    boolean busy(int slot) {
        return req[slot] != null;
    }

    int take(Object request, int opcode, int fdNum, long iov, int cnt, long off, long len, int fl) {
        int s = free[--freeTop];
        req[s] = request;
        op[s] = opcode;
        fd[s] = fdNum;
        addr[s] = iov;
        iovcnt[s] = cnt;
        offset[s] = off;
        length[s] = len;
        flags[s] = fl;
        done[s] = 0;
        return s;
    }

    /** Frees the slot and returns its request. */
    Object release(int s) {
        Object r = req[s];
        req[s] = null;
        free[freeTop++] = s;
        return r;
    }

    int op(int s) {
        return op[s];
    }

    int fd(int s) {
        return fd[s];
    }

    long addr(int s) {
        return addr[s];
    }

    int iovcnt(int s) {
        return iovcnt[s];
    }

    long offset(int s) {
        return offset[s];
    }

    long length(int s) {
        return length[s];
    }

    int flags(int s) {
        return flags[s];
    }

    long done(int s) {
        return done[s];
    }

    /** Sum of the iov_len of the slot's original iovec array; a READ_FIXED's length. */
    long iovBytes(int s) {
        if (op[s] == SqeLayout.IORING_OP_READ_FIXED) {
            return iovcnt[s] & 0xffffffffL;
        }
        long base = addr[s];
        long sum = 0;
        for (int i = 0; i < iovcnt[s]; i++) {
            sum += ALL.get(ValueLayout.JAVA_LONG, base + (long) i * IOVEC_BYTES + 8);
        }
        return sum;
    }

    /**
     * Records that {@code total} bytes of a read are done and writes the iovecs that remain (the
     * original ones past {@code total} bytes, the first one cut) into the slot's own area
     * (QEMU's qemu_iovec_concat into resubmit_qiov). {@code total} is below {@link #iovBytes}.
     */
    void setDone(int s, long total) {
        done[s] = total;
        if (op[s] == SqeLayout.IORING_OP_READ_FIXED) {
            return; // one contiguous range: writeSqe advances addr and len by done
        }
        int cnt = iovcnt[s];
        MemorySegment iov = ALL.asSlice(addr[s], (long) cnt * IOVEC_BYTES);
        long skip = total;
        int first = 0;
        while (first < cnt) {
            long len = iov.get(ValueLayout.JAVA_LONG, (long) first * IOVEC_BYTES + 8);
            if (skip < len) {
                break;
            }
            skip -= len;
            first++;
        }
        int n = cnt - first;
        MemorySegment area = rest[s];
        if (area == null || area.byteSize() < (long) n * IOVEC_BYTES) {
            area = arena.allocate((long) n * IOVEC_BYTES, 8); // first short read of this size on this slot
            rest[s] = area;
        }
        MemorySegment.copy(iov, (long) first * IOVEC_BYTES, area, 0, (long) n * IOVEC_BYTES);
        area.set(ValueLayout.JAVA_LONG, 0, area.get(ValueLayout.JAVA_LONG, 0) + skip);
        area.set(ValueLayout.JAVA_LONG, 8, area.get(ValueLayout.JAVA_LONG, 8) - skip);
        restCount[s] = n;
    }

    long restIov(int s) {
        return rest[s].address();
    }

    int restCount(int s) {
        return restCount[s];
    }

    // Resubmissions waiting for SQ room (FIFO).

    boolean resubmitWaiting() {
        return resubmitCount > 0;
    }

    int resubmitCount() {
        return resubmitCount;
    }

    void queueResubmit(int s) {
        resubmitQ[(resubmitHead + resubmitCount++) % resubmitQ.length] = s;
    }

    int popResubmit() {
        int s = resubmitQ[resubmitHead];
        resubmitHead = (resubmitHead + 1) % resubmitQ.length;
        resubmitCount--;
        return s;
    }

    // Failed submissions waiting to be completed by the next reap (FIFO).

    boolean failedWaiting() {
        return failedCount > 0;
    }

    void failLater(int s, long err) {
        failedResult[s] = err;
        failedQ[(failedHead + failedCount++) % failedQ.length] = s;
    }

    int popFailed() {
        int s = failedQ[failedHead];
        failedHead = (failedHead + 1) % failedQ.length;
        failedCount--;
        return s;
    }

    long failedResult(int s) {
        return failedResult[s];
    }

    /**
     * Writes slot {@code s}'s SQE at byte {@code at} of {@code sqes}, naming file {@code fd} (an fd,
     * or a registered file's index with IOSQE_FIXED_FILE in {@code sqeFlags}); a read or write
     * resubmitted after a short transfer covers only its remainder. The registered buffer of a
     * fixed read or write is its {@code length} field.
     */
    void writeSqe(int s, MemorySegment sqes, long at, int fd, int sqeFlags) {
        int opcode = op[s];
        switch (opcode) {
            case SqeLayout.IORING_OP_READV, SqeLayout.IORING_OP_WRITEV -> {
                if (done[s] == 0) {
                    SqeLayout.write(sqes, at, opcode, sqeFlags, fd, offset[s], addr[s], iovcnt[s], flags[s], s);
                } else {
                    SqeLayout.write(sqes, at, opcode, sqeFlags, fd, offset[s] + done[s], restIov(s), restCount(s),
                            flags[s], s);
                }
            }
            case SqeLayout.IORING_OP_READV_FIXED, SqeLayout.IORING_OP_WRITEV_FIXED -> {
                if (done[s] == 0) {
                    SqeLayout.write(sqes, at, opcode, sqeFlags, fd, offset[s], addr[s], iovcnt[s], flags[s], s);
                } else {
                    SqeLayout.write(sqes, at, opcode, sqeFlags, fd, offset[s] + done[s], restIov(s), restCount(s),
                            flags[s], s);
                }
                SqeLayout.writeBufIndex(sqes, at, (int) length[s]);
            }
            // addr and len inside registered buffer buf_index: io_prep_read_fixed (io_uring/rw.c).
            case SqeLayout.IORING_OP_READ_FIXED, SqeLayout.IORING_OP_WRITE_FIXED -> {
                SqeLayout.write(sqes, at, opcode, sqeFlags, fd, offset[s] + done[s], addr[s] + done[s],
                        (int) (iovcnt[s] - done[s]), flags[s], s);
                SqeLayout.writeBufIndex(sqes, at, (int) length[s]);
            }
            // off, addr = length, len = mode: io_fallocate_prep (io_uring/sync.c).
            case SqeLayout.IORING_OP_FALLOCATE -> SqeLayout.write(sqes, at, opcode, sqeFlags, fd, offset[s], length[s],
                    flags[s], 0, s);
            // off = len = 0: the whole file (io_fsync_prep).
            case SqeLayout.IORING_OP_FSYNC -> SqeLayout.write(sqes, at, opcode, sqeFlags, fd, 0, 0, 0, flags[s], s);
            default -> SqeLayout.write(sqes, at, opcode, 0, -1, 0, 0, 0, 0, s);
        }
    }
}
