package io.vblk.aio.linuxaio;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Any thread (offset arithmetic on memory the caller owns).
 *
 * <p>{@code struct iocb}, the Linux AIO control block (include/uapi/linux/aio_abi.h), 64 bytes,
 * little-endian x86_64 layout (where {@code aio_key} precedes {@code aio_rw_flags}).
 *
 * <pre>
 *    0  u64  aio_data        // returned as io_event.data; vblk puts the slot index here
 *    8  u32  aio_key         // kernel-owned; must be 0 at submit
 *   12  u32  aio_rw_flags    // RWF_* (0)
 *   16  u16  aio_lio_opcode  // IOCB_CMD_*
 *   18  s16  aio_reqprio
 *   20  u32  aio_fildes
 *   24  u64  aio_buf         // buffer, or struct iovec* for PREADV/PWRITEV
 *   32  u64  aio_nbytes      // byte count, or iovec count for PREADV/PWRITEV
 *   40  s64  aio_offset
 *   48  u64  aio_reserved2   // must be 0
 *   56  u32  aio_flags       // IOCB_FLAG_RESFD: signal aio_resfd (an eventfd) on completion
 *   60  u32  aio_resfd
 * </pre>
 */
public final class IocbLayout {
    public static final int BYTES = 64;
    public static final int AIO_DATA = 0;
    public static final int AIO_KEY = 8;
    public static final int AIO_RW_FLAGS = 12;
    public static final int AIO_LIO_OPCODE = 16;
    public static final int AIO_REQPRIO = 18;
    public static final int AIO_FILDES = 20;
    public static final int AIO_BUF = 24;
    public static final int AIO_NBYTES = 32;
    public static final int AIO_OFFSET = 40;
    public static final int AIO_RESERVED2 = 48;
    public static final int AIO_FLAGS = 56;
    public static final int AIO_RESFD = 60;

    /** enum IOCB_CMD_* (aio_abi.h). */
    public static final int IOCB_CMD_PREAD = 0;
    public static final int IOCB_CMD_PWRITE = 1;
    /** Kernel 4.18+ for regular files (aio_fsync). */
    public static final int IOCB_CMD_FSYNC = 2;
    public static final int IOCB_CMD_FDSYNC = 3;
    public static final int IOCB_CMD_POLL = 5;
    public static final int IOCB_CMD_NOOP = 6;
    public static final int IOCB_CMD_PREADV = 7;
    public static final int IOCB_CMD_PWRITEV = 8;

    /** aio_flags bit: notify {@code aio_resfd} (an eventfd) when the request completes. */
    public static final int IOCB_FLAG_RESFD = 1;

    private IocbLayout() {
    }

    /** Fills one iocb at {@code off}, clearing the kernel-owned and reserved fields. */
    public static void write(MemorySegment seg, long off, long data, int opcode, int fd, long buf, long nbytes,
                             long offset, int resfd) {
        seg.set(ValueLayout.JAVA_LONG, off + AIO_DATA, data);
        seg.set(ValueLayout.JAVA_LONG, off + AIO_KEY, 0L); // aio_key + aio_rw_flags
        seg.set(ValueLayout.JAVA_INT, off + AIO_LIO_OPCODE, opcode & 0xffff); // opcode + reqprio 0
        seg.set(ValueLayout.JAVA_INT, off + AIO_FILDES, fd);
        seg.set(ValueLayout.JAVA_LONG, off + AIO_BUF, buf);
        seg.set(ValueLayout.JAVA_LONG, off + AIO_NBYTES, nbytes);
        seg.set(ValueLayout.JAVA_LONG, off + AIO_OFFSET, offset);
        seg.set(ValueLayout.JAVA_LONG, off + AIO_RESERVED2, 0L);
        seg.set(ValueLayout.JAVA_INT, off + AIO_FLAGS, resfd >= 0 ? IOCB_FLAG_RESFD : 0);
        seg.set(ValueLayout.JAVA_INT, off + AIO_RESFD, Math.max(resfd, 0));
    }
}
