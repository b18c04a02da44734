package io.vblk.drivers.nbd;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Any thread: stateless.
 *
 * <p>The NBD wire layouts as offset helpers over native memory, big-endian as proto.md requires.
 *
 * <pre>
 *  request (client → server, 28 bytes)       simple reply (16 bytes, then read data)
 *     0  u32 magic 0x25609513                   0  u32 magic 0x67446698
 *     4  u16 command flags                      4  u32 error (0 or an NBD error)
 *     6  u16 type                               8  u64 cookie
 *     8  u64 cookie
 *    16  u64 offset                          structured reply chunk (20 bytes, then payload)
 *    24  u32 length                             0  u32 magic 0x668e33ef
 *                                               4  u16 flags (NBD_REPLY_FLAG_DONE)
 *  option (client → server, 16 bytes + data)    6  u16 type
 *     0  u64 magic IHAVEOPT                     8  u64 cookie
 *     8  u32 option                            16  u32 payload length
 *    12  u32 data length
 *                                            option reply (20 bytes + data)
 *                                               0  u64 magic 0x3e889045565a9
 *                                               8  u32 option   12 u32 reply type   16 u32 length
 * </pre>
 */
public final class NbdWire {
    private NbdWire() {
    }

    public static final int REQUEST_BYTES = 28;
    public static final int SIMPLE_REPLY_BYTES = 16;
    public static final int CHUNK_BYTES = 20;
    public static final int OPTION_BYTES = 16;
    public static final int OPTION_REPLY_BYTES = 20;

    public static final int REQ_MAGIC = 0;
    public static final int REQ_FLAGS = 4;
    public static final int REQ_TYPE = 6;
    public static final int REQ_COOKIE = 8;
    public static final int REQ_OFFSET = 16;
    public static final int REQ_LENGTH = 24;

    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);

    public static int u16(MemorySegment m, long off) {
        return Short.toUnsignedInt(m.get(U16, off));
    }

    public static int u32(MemorySegment m, long off) {
        return m.get(U32, off);
    }

    public static long u64(MemorySegment m, long off) {
        return m.get(U64, off);
    }

    public static void putU16(MemorySegment m, long off, int v) {
        m.set(U16, off, (short) v);
    }

    public static void putU32(MemorySegment m, long off, int v) {
        m.set(U32, off, v);
    }

    public static void putU64(MemorySegment m, long off, long v) {
        m.set(U64, off, v);
    }

    /** A simple reply header at {@code off}. */
    public static void simpleReply(MemorySegment m, long off, int error, long cookie) {
        putU32(m, off, NbdProtocol.SIMPLE_REPLY_MAGIC);
        putU32(m, off + 4, error);
        putU64(m, off + 8, cookie);
    }

    /** A structured reply chunk header at {@code off}. */
    public static void chunk(MemorySegment m, long off, int flags, int type, long cookie, int length) {
        putU32(m, off, NbdProtocol.STRUCTURED_REPLY_MAGIC);
        putU16(m, off + 4, flags);
        putU16(m, off + 6, type);
        putU64(m, off + 8, cookie);
        putU32(m, off + 16, length);
    }

    /** A request header at {@code off}. */
    public static void request(MemorySegment m, long off, int flags, int type, long cookie, long offset, int length) {
        putU32(m, off + REQ_MAGIC, NbdProtocol.REQUEST_MAGIC);
        putU16(m, off + REQ_FLAGS, flags);
        putU16(m, off + REQ_TYPE, type);
        putU64(m, off + REQ_COOKIE, cookie);
        putU64(m, off + REQ_OFFSET, offset);
        putU32(m, off + REQ_LENGTH, length);
    }

    /** An option reply header at {@code off}. */
    public static void optionReply(MemorySegment m, long off, int option, int type, int length) {
        putU64(m, off, NbdProtocol.REPLY_MAGIC);
        putU32(m, off + 8, option);
        putU32(m, off + 12, type);
        putU32(m, off + 16, length);
    }
}
