package io.vblk.guest;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.zip.CRC32C;

/**
 * Home thread: the vCPU thread that owns the instance (the CRC object is reused). No locking,
 * no allocation.
 *
 * <p>Self-checking sector contents for verify mode: every 512-byte sector written carries its own
 * sector number, the generation of the write, and a CRC-32C of the rest, so a read can tell a
 * correct sector from a stale one (older generation), a misplaced one (wrong LBA), a torn or
 * corrupted one (bad checksum) and one never written (no magic).
 *
 * <pre>
 * per 512-byte sector, little-endian
 *   0   le32 magic  0x4b4c4256 ("VBLK")
 *   4   le32 crc32c of bytes 8..511
 *   8   le64 sector number on the device
 *   16  le64 generation (a write counter, never 0)
 *   24  le64 x 61 payload: xorshift64 sequence seeded from sector and generation
 * </pre>
 */
public final class VerifyPattern {
    public static final int MAGIC = 0x4b4c4256;
    public static final int SECTOR = BlkWireLayout.SECTOR_BYTES;
    private static final ValueLayout.OfInt LE32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong LE64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** Results of {@link #check}. */
    public static final int OK = 0;
    public static final int BAD_MAGIC = 1;
    public static final int BAD_CHECKSUM = 2;
    public static final int WRONG_SECTOR = 3;
    public static final int WRONG_GENERATION = 4;

    private final CRC32C crc = new CRC32C();

    /** Fills {@code bytes} (a multiple of 512) of {@code buf} for sectors starting at {@code sector}. */
    public void fill(MemorySegment buf, ByteBuffer view, int bytes, long sector, long generation) {
        for (int off = 0; off < bytes; off += SECTOR) {
            long s = sector + off / SECTOR;
            buf.set(LE32, off, MAGIC);
            buf.set(LE64, off + 8, s);
            buf.set(LE64, off + 16, generation);
            long x = mix(s, generation);
            for (int w = 24; w < SECTOR; w += 8) {
                x ^= x << 13;
                x ^= x >>> 7;
                x ^= x << 17;
                buf.set(LE64, off + w, x);
            }
            buf.set(LE32, off + 4, crcOf(view, off));
        }
    }

    /**
     * Checks one sector at byte {@code off} of {@code buf}: {@link #OK} or the first problem
     * found, in the order magic, checksum, sector number, generation.
     */
    public int check(MemorySegment buf, ByteBuffer view, int off, long sector, long generation) {
        if (buf.get(LE32, off) != MAGIC) {
            return BAD_MAGIC;
        }
        if (buf.get(LE32, off + 4) != crcOf(view, off)) {
            return BAD_CHECKSUM;
        }
        if (buf.get(LE64, off + 8) != sector) {
            return WRONG_SECTOR;
        }
        if (buf.get(LE64, off + 16) != generation) {
            return WRONG_GENERATION;
        }
        return OK;
    }

    /** The generation stored in the sector at {@code off} (for error messages). */
    public static long generationAt(MemorySegment buf, int off) {
        return buf.get(LE64, off + 16);
    }

    /** The sector number stored in the sector at {@code off}. */
    public static long sectorAt(MemorySegment buf, int off) {
        return buf.get(LE64, off + 8);
    }

    public static String describe(int result) {
        return switch (result) {
            case OK -> "ok";
            case BAD_MAGIC -> "no verify header (never written, or overwritten by something else)";
            case BAD_CHECKSUM -> "checksum mismatch (torn or corrupted)";
            case WRONG_SECTOR -> "header names another sector (misplaced data)";
            case WRONG_GENERATION -> "older or newer generation (stale or lost write)";
            default -> "result " + result;
        };
    }

    private int crcOf(ByteBuffer view, int off) {
        crc.reset();
        view.limit(off + SECTOR).position(off + 8);
        crc.update(view);
        view.clear();
        return (int) crc.getValue();
    }

    private static long mix(long sector, long generation) {
        long z = sector * 0x9E3779B97F4A7C15L ^ generation * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 31)) * 0x94D049BB133111EBL;
        return z == 0 ? 1 : z;
    }
}
