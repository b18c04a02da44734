package io.vblk.aio.linuxaio;

/**
 * Any thread.
 *
 * <p>{@code struct io_event} (include/uapi/linux/aio_abi.h), 32 bytes: one completion, as
 * {@code io_getevents} returns it and as it sits in the kernel's completion ring.
 *
 * <pre>
 *    0  u64  data   // the iocb's aio_data
 *    8  u64  obj    // user address of the iocb
 *   16  s64  res    // bytes transferred, or -errno
 *   24  s64  res2   // secondary result (0)
 * </pre>
 */
public final class IoEventLayout {
    public static final int BYTES = 32;
    public static final int DATA = 0;
    public static final int OBJ = 8;
    public static final int RES = 16;
    public static final int RES2 = 24;

    private IoEventLayout() {
    }
}
