package io.vblk.aio.uring;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Any thread (offset arithmetic on memory the caller owns).
 *
 * <p>{@code struct io_uring_sqe} (include/uapi/linux/io_uring.h), 64 bytes (without
 * IORING_SETUP_SQE128), little-endian x86_64. The unions are named by the use vblk makes of them.
 *
 * <pre>
 *    0  u8   opcode        // IORING_OP_*
 *    1  u8   flags         // IOSQE_*
 *    2  u16  ioprio
 *    4  s32  fd            // or the index into the registered files with IOSQE_FIXED_FILE
 *    8  u64  off           // file offset (READV/WRITEV/FSYNC/FALLOCATE)
 *   16  u64  addr          // struct iovec * (READV/WRITEV/*V_FIXED); buffer (READ/WRITE_FIXED); byte length (FALLOCATE)
 *   24  u32  len           // iovec count (READV/WRITEV/*V_FIXED); bytes (READ/WRITE_FIXED); mode (FALLOCATE)
 *   28  u32  op_flags      // rw_flags (RWF_*), fsync_flags (IORING_FSYNC_DATASYNC), ...
 *   32  u64  user_data     // returned in the CQE; vblk puts the slot index here
 *   40  u16  buf_index     // registered buffer (READ/WRITE_FIXED, READV/WRITEV_FIXED)
 *   42  u16  personality
 *   44  s32  splice_fd_in / file_index
 *   48  u64  addr3
 *   56  u64  __pad2
 * </pre>
 */
public final class SqeLayout {
    public static final int BYTES = 64;
    public static final int OPCODE = 0;
    public static final int FLAGS = 1;
    public static final int IOPRIO = 2;
    public static final int FD = 4;
    public static final int OFF = 8;
    public static final int ADDR = 16;
    public static final int LEN = 24;
    public static final int OP_FLAGS = 28;
    public static final int USER_DATA = 32;
    public static final int BUF_INDEX = 40;
    public static final int PERSONALITY = 42;
    public static final int FILE_INDEX = 44;
    public static final int ADDR3 = 48;

    // enum io_uring_op (io_uring.h; all present since 5.6).
    public static final int IORING_OP_NOP = 0;
    public static final int IORING_OP_READV = 1;
    public static final int IORING_OP_WRITEV = 2;
    public static final int IORING_OP_FSYNC = 3;
    public static final int IORING_OP_READ_FIXED = 4;
    public static final int IORING_OP_WRITE_FIXED = 5;
    /** off = offset, addr = length, len = mode (io_uring/sync.c io_fallocate_prep). */
    public static final int IORING_OP_FALLOCATE = 17;
    /**
     * Vectored I/O inside one registered buffer (buf_index), Linux 6.15: the enum's 60 and 61, after
     * IORING_OP_EPOLL_WAIT = 59 (io_prep_readv_fixed / io_prep_writev_fixed, io_uring/rw.c).
     */
    public static final int IORING_OP_READV_FIXED = 60;
    public static final int IORING_OP_WRITEV_FIXED = 61;

    /** sqe->flags: {@code fd} is an index into the files registered with IORING_REGISTER_FILES. */
    public static final int IOSQE_FIXED_FILE = 1;

    // sqe->rw_flags: RWF_* of preadv2/pwritev2 (include/uapi/linux/fs.h).
    /** Per-write O_DSYNC: the data is durable when the write completes (a FUA write). */
    public static final int RWF_DSYNC = 0x2;
    /** Do not wait: complete with -EAGAIN when the data is not at hand (uncached page, empty socket). */
    public static final int RWF_NOWAIT = 0x8;

    /** sqe->fsync_flags: fdatasync instead of fsync (io_uring.h; the only flag io_fsync_prep accepts). */
    public static final int IORING_FSYNC_DATASYNC = 1;

    private SqeLayout() {
    }

    /** The reads whose short result the ring resubmits for the remainder (READV, READ_FIXED, READV_FIXED). */
    static boolean isRead(int opcode) {
        return opcode == IORING_OP_READV || opcode == IORING_OP_READ_FIXED || opcode == IORING_OP_READV_FIXED;
    }

    /** Sets the SQE's {@code buf_index} (after {@link #write}, which clears it). */
    public static void writeBufIndex(MemorySegment sqes, long at, int bufIndex) {
        sqes.set(ValueLayout.JAVA_SHORT, at + BUF_INDEX, (short) bufIndex);
    }

    /**
     * Fills the SQE at {@code at} whole (every reserved field cleared: the kernel rejects non-zero
     * ones with -EINVAL, e.g. io_fsync_prep's check of addr, buf_index and splice_fd_in).
     */
    public static void write(MemorySegment sqes, long at, int opcode, int flags, int fd, long off, long addr,
                             int len, int opFlags, long userData) {
        // opcode, flags, ioprio = 0, fd in one little-endian long.
        sqes.set(ValueLayout.JAVA_LONG, at, (opcode & 0xffL) | (flags & 0xffL) << 8 | (fd & 0xffffffffL) << 32);
        sqes.set(ValueLayout.JAVA_LONG, at + OFF, off);
        sqes.set(ValueLayout.JAVA_LONG, at + ADDR, addr);
        sqes.set(ValueLayout.JAVA_LONG, at + LEN, (len & 0xffffffffL) | (opFlags & 0xffffffffL) << 32);
        sqes.set(ValueLayout.JAVA_LONG, at + USER_DATA, userData);
        sqes.set(ValueLayout.JAVA_LONG, at + BUF_INDEX, 0L); // buf_index, personality, file_index
        sqes.set(ValueLayout.JAVA_LONG, at + ADDR3, 0L);
        sqes.set(ValueLayout.JAVA_LONG, at + ADDR3 + 8, 0L);
    }
}
