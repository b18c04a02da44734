package io.vblk.aio.linuxaio;

/**
 * Any thread (offsets only). The engine reads it on its home thread.
 *
 * <p>The completion ring the kernel maps into user space for each AIO context; the context id that
 * {@code io_setup} returns is its address (fs/aio.c, {@code struct aio_ring}). The kernel is the
 * producer (writes an event, then publishes {@code tail}); the reader consumes events and
 * publishes {@code head}, which tells the kernel the slots are free.
 *
 * <pre>
 *    0  u32  id
 *    4  u32  nr                  // ring entries (the kernel rounds io_setup's count up)
 *    8  u32  head                // next entry to consume; written by the reader
 *   12  u32  tail                // next entry the kernel fills; written by the kernel
 *   16  u32  magic               // AIO_RING_MAGIC 0xa10a10a1
 *   20  u32  compat_features     // AIO_RING_COMPAT_FEATURES 1
 *   24  u32  incompat_features   // AIO_RING_INCOMPAT_FEATURES 0
 *   28  u32  header_length       // sizeof(struct aio_ring) = 32
 *   32  struct io_event io_events[nr]   // IoEventLayout, 32 bytes each
 * </pre>
 *
 * The layout is stable user ABI only while magic and incompat_features match; otherwise the
 * engine falls back to {@code io_getevents(2)}.
 */
public final class AioRingLayout {
    public static final int ID = 0;
    public static final int NR = 4;
    public static final int HEAD = 8;
    public static final int TAIL = 12;
    public static final int MAGIC = 16;
    public static final int COMPAT_FEATURES = 20;
    public static final int INCOMPAT_FEATURES = 24;
    public static final int HEADER_LENGTH = 28;
    public static final int HEADER_BYTES = 32;

    /** fs/aio.c AIO_RING_MAGIC. */
    public static final int AIO_RING_MAGIC = 0xa10a10a1;
    /** fs/aio.c AIO_RING_INCOMPAT_FEATURES: anything else means a layout vblk does not know. */
    public static final int AIO_RING_INCOMPAT_FEATURES = 0;

    private AioRingLayout() {
    }

    /** Byte offset of ring entry {@code i}. */
    public static long eventOffset(int i) {
        return HEADER_BYTES + (long) i * IoEventLayout.BYTES;
    }
}
