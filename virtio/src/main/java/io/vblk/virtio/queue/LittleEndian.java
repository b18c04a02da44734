package io.vblk.virtio.queue;

import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Any thread: constants.
 *
 * <p>Little-endian, unaligned value layouts for guest structures. Virtio 1.x structures are
 * little-endian (1.2 section 1.4, "le16/le32/le64"); a guest may place a buffer at any byte, so
 * every access uses the unaligned layouts (the aligned ones throw on a misaligned address).
 */
public final class LittleEndian {
    public static final ValueLayout.OfByte U8 = ValueLayout.JAVA_BYTE;
    public static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    public static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    public static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private LittleEndian() {
    }
}
