package io.vblk.drivers.node;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * Any thread for {@link #mark} and {@link #anyDirty} (the node's channels call them from their
 * IoThreads, lock-free and allocation-free: one atomic OR per 64 chunks); every other method on the owner's thread (a job
 * on the main loop).
 *
 * <p>A dirty bitmap of a block node, as QEMU's {@code BdrvDirtyBitmap}: one bit per
 * {@link #granularity()} bytes of the node, set for every chunk a write, write-zeroes or discard
 * touched since the bit was last cleared. Attached with {@link BlockNode#addDirtyBitmap}, it hears
 * every such request that completes through any channel of the node.
 *
 * <p>Ordering: {@link #mark} sets bits with a volatile {@code getAndBitwiseOr}; {@link #testAndClear}
 * clears with a volatile {@code getAndBitwiseAnd}. Read-modify-writes of one word are totally
 * ordered, so a mark either comes before the clear (the copier then reads data that landed before
 * the mark) or after it (the bit is set again and the chunk copied again). Pairs with the copier's
 * clear-then-read in {@code MirrorJob}.
 */
public final class DirtyBitmap {
    private static final VarHandle WORDS = MethodHandles.arrayElementVarHandle(long[].class);

    private final long[] words;
    private final int shift;
    private final long length;
    private final long chunks;

    /**
     * A clean bitmap over {@code length} bytes with one bit per {@code granularity} bytes (a power
     * of two, 512 B .. 64 MiB, as QEMU's mirror accepts).
     */
    public DirtyBitmap(long length, int granularity) {
        if (granularity < 512 || granularity > (64 << 20) || Integer.bitCount(granularity) != 1) {
            throw new IllegalArgumentException("granularity must be a power of 2 between 512 and 64M, got " + granularity);
        }
        if (length < 0) {
            throw new IllegalArgumentException("length must be >= 0, got " + length);
        }
        this.shift = Integer.numberOfTrailingZeros(granularity);
        this.length = length;
        this.chunks = (length + granularity - 1) >>> shift;
        if (chunks > (long) Integer.MAX_VALUE * 64) {
            throw new IllegalArgumentException("bitmap of " + chunks + " chunks is too large; raise the granularity");
        }
        this.words = new long[(int) ((chunks + 63) >>> 6)];
    }

    /** Bytes per bit. */
    public int granularity() {
        return 1 << shift;
    }

    /** Bytes covered. */
    public long length() {
        return length;
    }

    /** Number of chunks (bits). */
    public long chunks() {
        return chunks;
    }

    /** Byte offset of chunk {@code c}. */
    public long offsetOf(long c) {
        return c << shift;
    }

    /** Bytes of chunk {@code c} (the last one may be short). */
    public int bytesOf(long c) {
        return (int) Math.min(1L << shift, length - (c << shift));
    }

    /** Marks every chunk {@code [offset, offset+len)} touches; the part outside the node is ignored. Any thread. */
    public void mark(long offset, long len) {
        if (len <= 0 || offset >= length || offset < 0) {
            return;
        }
        long first = offset >>> shift;
        long last = (Math.min(length, offset + len) - 1) >>> shift;
        for (long c = first; c <= last; ) {
            int w = (int) (c >>> 6);
            int from = (int) (c & 63);
            int to = (int) Math.min(63, from + (last - c));
            long bits = (to == 63 ? -1L : (1L << (to + 1)) - 1) & (-1L << from);
            if (((long) WORDS.getVolatile(words, w) & bits) != bits) {
                WORDS.getAndBitwiseOr(words, w, bits);
            }
            c += to - from + 1;
        }
    }

    /** Marks every chunk (sync=full starts with the whole node dirty). */
    public void markAll() {
        mark(0, length);
    }

    /** Clears chunk {@code c}; returns whether it was dirty. */
    public boolean testAndClear(long c) {
        long bit = 1L << (c & 63);
        return ((long) WORDS.getAndBitwiseAnd(words, (int) (c >>> 6), ~bit) & bit) != 0;
    }

    /** Whether chunk {@code c} is dirty. */
    public boolean isDirty(long c) {
        return ((long) WORDS.getVolatile(words, (int) (c >>> 6)) & (1L << (c & 63))) != 0;
    }

    /** Whether any chunk {@code [offset, offset+len)} touches is dirty. Any thread, allocation-free. */
    public boolean anyDirty(long offset, long len) {
        if (len <= 0 || offset >= length || offset < 0) {
            return false;
        }
        long first = offset >>> shift;
        long last = (Math.min(length, offset + len) - 1) >>> shift;
        for (int w = (int) (first >>> 6); w <= (int) (last >>> 6); w++) {
            long bits = -1L;
            if (w == (int) (first >>> 6)) {
                bits &= -1L << (first & 63);
            }
            if (w == (int) (last >>> 6) && (last & 63) != 63) {
                bits &= (1L << ((last & 63) + 1)) - 1;
            }
            if (((long) WORDS.getVolatile(words, w) & bits) != 0) {
                return true;
            }
        }
        return false;
    }

    /** The first dirty chunk at or after {@code from}, or -1. */
    public long nextDirty(long from) {
        if (from < 0 || from >= chunks) {
            return -1;
        }
        int w = (int) (from >>> 6);
        long word = (long) WORDS.getVolatile(words, w) & (-1L << (from & 63));
        while (true) {
            if (word != 0) {
                long c = ((long) w << 6) + Long.numberOfTrailingZeros(word);
                return c < chunks ? c : -1;
            }
            if (++w >= words.length) {
                return -1;
            }
            word = (long) WORDS.getVolatile(words, w);
        }
    }

    /** Dirty chunks now (a scan). */
    public long count() {
        long n = 0;
        for (int w = 0; w < words.length; w++) {
            n += Long.bitCount((long) WORDS.getVolatile(words, w));
        }
        return n;
    }

    /** Dirty bytes now (a scan; the last chunk counted at its real size). */
    public long dirtyBytes() {
        long n = count() << shift;
        if (chunks > 0 && isDirty(chunks - 1)) {
            n -= (1L << shift) - bytesOf(chunks - 1);
        }
        return n;
    }

    @Override
    public String toString() {
        return "DirtyBitmap[" + chunks + " x " + granularity() + " B, " + count() + " dirty]";
    }
}
