package io.vblk.drivers.qcow2;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Any thread: immutable once parsed.
 *
 * <p>The qcow2 header (QEMU docs/interop/qcow2.txt, "Header") and the header extensions vblk reads,
 * parsed and checked from the image's first bytes. Everything a later step trusts is checked here:
 * the cluster size, the refcount width, every table offset cluster-aligned and inside the bounds
 * vblk accepts, and the features vblk does not implement refused with a message naming them.
 *
 * <pre>
 *   byte  0  magic "QFI\xfb"            48  refcount_table_offset (u64)
 *         4  version (2 or 3)            56  refcount_table_clusters (u32)
 *         8  backing_file_offset (u64)   60  nb_snapshots (u32)
 *        16  backing_file_size (u32)     64  snapshots_offset (u64)
 *        20  cluster_bits (u32)          -- version 3 only --
 *        24  size (u64)                  72  incompatible_features (u64)
 *        32  crypt_method (u32)          80  compatible_features (u64)
 *        36  l1_size (u32)               88  autoclear_features (u64)
 *        40  l1_table_offset (u64)       96  refcount_order (u32)
 *                                       100  header_length (u32)
 *                                       104  compression_type (u8, when header_length > 104)
 *   then extensions: type (u32), length (u32), data padded to 8 bytes; type 0 ends the list.
 * </pre>
 * All numbers are big-endian.
 */
public record Qcow2Header(int version, int clusterBits, long size, int l1Size, long l1TableOffset,
                          long refcountTableOffset, int refcountTableClusters, int refcountOrder,
                          long incompatible, long compatible, long autoclear, int headerLength,
                          String backingFile, String backingFormat) {
    static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);
    static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);

    public static final int MAGIC = 0x514649fb; // "QFI\xfb"
    /** Bytes of a version 2 header; version 3 says its own length (at least 104). */
    static final int V2_HEADER_LENGTH = 72;
    static final int V3_MIN_HEADER_LENGTH = 104;
    /** Bytes read at open to parse the header and its extensions (the header lives in cluster 0). */
    static final int PROBE_BYTES = 4096;

    /** Incompatible feature bits (qcow2.txt, bytes 72-79). */
    static final long INCOMPAT_DIRTY = 1L;
    static final long INCOMPAT_CORRUPT = 1L << 1;
    static final long INCOMPAT_DATA_FILE = 1L << 2;
    static final long INCOMPAT_COMPRESSION = 1L << 3;
    static final long INCOMPAT_EXTL2 = 1L << 4;
    static final long INCOMPAT_KNOWN = (1L << 5) - 1;

    /** Header extension types. */
    static final int EXT_END = 0;
    static final int EXT_BACKING_FORMAT = 0xe2792aca;
    static final int EXT_FEATURE_TABLE = 0x6803f857;
    static final int EXT_BITMAPS = 0x23852875;
    static final int EXT_CRYPTO = 0x0537be77;
    static final int EXT_DATA_FILE = 0x44415441;

    /** QEMU's limits: cluster_bits 9..21 (512 B .. 2 MiB); the L1 table at most 32 MiB (QCOW_MAX_L1_SIZE). */
    static final int MIN_CLUSTER_BITS = 9;
    static final int MAX_CLUSTER_BITS = 21;
    static final long MAX_L1_BYTES = 32L << 20;
    /** QEMU's QCOW_MAX_REFTABLE_SIZE: 8 MiB of refcount table. */
    static final long MAX_REFTABLE_BYTES = 8L << 20;
    /** Offsets are 56-bit in the tables (bits 9-55); vblk refuses anything at or past 2^56. */
    static final long MAX_OFFSET = 1L << 56;
    /** Largest backing file name QEMU writes (1023 bytes). */
    static final int MAX_BACKING_NAME = 1023;

    public long clusterSize() {
        return 1L << clusterBits;
    }

    public int refcountBits() {
        return 1 << refcountOrder;
    }

    /**
     * Parses and checks the header in {@code buf} ({@code len} valid bytes, read from offset 0 of
     * an image of {@code fileLength} bytes). Throws {@link IllegalArgumentException} with a message
     * that says what is wrong or not supported.
     */
    public static Qcow2Header parse(MemorySegment buf, int len, long fileLength) {
        if (len < V2_HEADER_LENGTH) {
            throw bad("the image is " + len + " bytes, shorter than a qcow2 header (" + V2_HEADER_LENGTH + ")");
        }
        int magic = buf.get(U32, 0);
        if (magic != MAGIC) {
            throw bad(String.format("not a qcow2 image (magic 0x%08x, expected 0x%08x \"QFI\\xfb\")", magic, MAGIC));
        }
        int version = buf.get(U32, 4);
        if (version != 2 && version != 3) {
            throw bad("unsupported qcow2 version " + Integer.toUnsignedString(version) + "; accepts 2 or 3");
        }
        long backingOffset = buf.get(U64, 8);
        int backingSize = buf.get(U32, 16);
        int clusterBits = buf.get(U32, 20);
        if (clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) {
            throw bad("cluster_bits " + Integer.toUnsignedString(clusterBits) + " out of range "
                    + MIN_CLUSTER_BITS + ".." + MAX_CLUSTER_BITS + " (cluster size 512 B .. 2 MiB)");
        }
        long cs = 1L << clusterBits;
        long size = buf.get(U64, 24);
        int crypt = buf.get(U32, 32);
        if (crypt != 0) {
            throw bad("encrypted images are not supported (crypt_method " + Integer.toUnsignedString(crypt) + ")");
        }
        int l1Size = buf.get(U32, 36);
        long l1Offset = buf.get(U64, 40);
        long rtOffset = buf.get(U64, 48);
        int rtClusters = buf.get(U32, 56);
        int nbSnapshots = buf.get(U32, 60);
        if (nbSnapshots != 0) {
            throw bad("internal snapshots are not supported (the image has " + Integer.toUnsignedString(nbSnapshots)
                    + "); delete them with qemu-img snapshot -d, or commit them");
        }
        long incompat = 0;
        long compat = 0;
        long autoclear = 0;
        int order = 4; // version 2: always 16-bit refcounts
        int headerLength = V2_HEADER_LENGTH;
        if (version == 3) {
            if (len < V3_MIN_HEADER_LENGTH) {
                throw bad("version 3 header truncated: " + len + " bytes");
            }
            incompat = buf.get(U64, 72);
            compat = buf.get(U64, 80);
            autoclear = buf.get(U64, 88);
            order = buf.get(U32, 96);
            headerLength = buf.get(U32, 100);
            if (headerLength < V3_MIN_HEADER_LENGTH || headerLength > len) {
                throw bad("header_length " + Integer.toUnsignedString(headerLength) + " out of range "
                        + V3_MIN_HEADER_LENGTH + ".." + len);
            }
        }
        if (order < 0 || order > 6) {
            throw bad("refcount_order " + Integer.toUnsignedString(order) + " out of range 0..6");
        }
        if (order < 3) {
            throw bad("refcount_bits=" + (1 << order) + " is not supported; vblk accepts refcount_bits 8, 16, 32 or 64"
                    + " (qemu-img amend -o refcount_bits=16)");
        }
        checkFeatures(incompat, buf, len, headerLength);
        if (Long.compareUnsigned(size, MAX_OFFSET) >= 0) {
            throw bad("virtual size " + Long.toUnsignedString(size) + " is too large");
        }
        // The L1 table must map the whole virtual size (qcow2.txt: l1_size entries of cs/8 L2 entries).
        long l2Entries = cs / 8;
        long needL1 = (size + cs * l2Entries - 1) / (cs * l2Entries);
        if (Integer.toUnsignedLong(l1Size) < needL1) {
            throw bad("l1_size " + Integer.toUnsignedString(l1Size) + " does not cover the virtual size (needs " + needL1 + ")");
        }
        if (Integer.toUnsignedLong(l1Size) * 8 > MAX_L1_BYTES) {
            throw bad("l1_size " + Integer.toUnsignedString(l1Size) + " is larger than the " + (MAX_L1_BYTES >> 20) + " MiB QEMU allows");
        }
        checkTable("l1_table_offset", l1Offset, Integer.toUnsignedLong(l1Size) * 8, cs, fileLength, l1Size != 0);
        if (rtClusters == 0) {
            throw bad("refcount_table_clusters is 0");
        }
        if (Integer.toUnsignedLong(rtClusters) * cs > MAX_REFTABLE_BYTES) {
            throw bad("refcount_table_clusters " + Integer.toUnsignedString(rtClusters) + " is larger than the "
                    + (MAX_REFTABLE_BYTES >> 20) + " MiB QEMU allows");
        }
        checkTable("refcount_table_offset", rtOffset, Integer.toUnsignedLong(rtClusters) * cs, cs, fileLength, true);

        String backingFormat = null;
        int extStart = version == 3 ? headerLength : V2_HEADER_LENGTH;
        List<String> ext = extensions(buf, len, extStart, backingOffset, backingSize);
        for (String e : ext) {
            if (e.startsWith("fmt:")) {
                backingFormat = e.substring(4);
            }
        }
        String backing = null;
        if (backingOffset != 0) {
            if (backingSize <= 0 || backingSize > MAX_BACKING_NAME) {
                throw bad("backing_file_size " + Integer.toUnsignedString(backingSize) + " out of range 1.." + MAX_BACKING_NAME);
            }
            if (backingOffset < 0 || backingOffset + backingSize > Math.min(len, cs)) {
                throw bad("backing file name at " + Long.toUnsignedString(backingOffset) + " lies outside the header cluster");
            }
            byte[] name = new byte[backingSize];
            MemorySegment.copy(buf, ValueLayout.JAVA_BYTE, backingOffset, name, 0, backingSize);
            backing = new String(name, StandardCharsets.UTF_8);
        }
        return new Qcow2Header(version, clusterBits, size, l1Size, l1Offset, rtOffset, rtClusters, order, incompat,
                compat, autoclear, headerLength, backing, backingFormat);
    }

    private static void checkFeatures(long incompat, MemorySegment buf, int len, int headerLength) {
        if ((incompat & INCOMPAT_DATA_FILE) != 0) {
            throw bad("external data files are not supported (incompatible feature bit 2, data-file)");
        }
        if ((incompat & INCOMPAT_EXTL2) != 0) {
            throw bad("extended L2 entries (subclusters, extended_l2=on) are not supported (incompatible feature bit 4)");
        }
        if ((incompat & INCOMPAT_COMPRESSION) != 0) {
            throw bad("compressed images are not supported (incompatible feature bit 3: compression type other than zlib)");
        }
        if ((incompat & INCOMPAT_CORRUPT) != 0) {
            throw bad("the image is marked corrupt (incompatible feature bit 1); repair it with qemu-img check -r all");
        }
        if ((incompat & INCOMPAT_DIRTY) != 0) {
            throw bad("the image is dirty (incompatible feature bit 0: refcounts may be stale after lazy_refcounts);"
                    + " repair it with qemu-img check -r all");
        }
        long unknown = incompat & ~INCOMPAT_KNOWN;
        if (unknown != 0) {
            throw bad("unknown incompatible feature bits 0x" + Long.toHexString(unknown) + " are set");
        }
        if (headerLength > 104 && len > 104 && buf.get(ValueLayout.JAVA_BYTE, 104) != 0) {
            throw bad("compression type " + buf.get(ValueLayout.JAVA_BYTE, 104) + " is not supported");
        }
    }

    /** A table at {@code off} of {@code bytes}: cluster-aligned, and inside the 56-bit range and the file. */
    private static void checkTable(String what, long off, long bytes, long cs, long fileLength, boolean present) {
        if (!present) {
            return;
        }
        if (off <= 0 || off % cs != 0) {
            throw bad(what + " " + Long.toUnsignedString(off) + " is not a non-zero multiple of the cluster size " + cs);
        }
        if (off >= MAX_OFFSET || off + bytes > fileLength) {
            throw bad(what + " " + Long.toUnsignedString(off) + " (+" + bytes + " bytes) lies past the end of the file ("
                    + fileLength + " bytes)");
        }
    }

    /** Walks the extension list; returns "fmt:NAME" for a backing format, refuses data files and encryption. */
    private static List<String> extensions(MemorySegment buf, int len, int start, long backingOffset, int backingSize) {
        List<String> found = new ArrayList<>();
        long end = backingOffset != 0 ? Math.min(len, backingOffset) : len;
        long p = start;
        while (p + 8 <= end) {
            int type = buf.get(U32, p);
            long elen = Integer.toUnsignedLong(buf.get(U32, p + 4));
            p += 8;
            if (type == EXT_END) {
                return found;
            }
            if (p + elen > end) {
                throw bad(String.format("header extension 0x%08x (%d bytes) runs past the header", type, elen));
            }
            switch (type) {
                case EXT_BACKING_FORMAT -> {
                    byte[] b = new byte[(int) elen];
                    MemorySegment.copy(buf, ValueLayout.JAVA_BYTE, p, b, 0, b.length);
                    found.add("fmt:" + new String(b, StandardCharsets.UTF_8));
                }
                case EXT_DATA_FILE -> throw bad("external data files are not supported (data file name extension)");
                case EXT_CRYPTO -> throw bad("encrypted images are not supported (full disk encryption extension)");
                default -> {
                    // Feature name table, bitmaps and unknown extensions: nothing vblk needs (bitmaps are
                    // invalidated through the autoclear bits when the image is opened writable).
                }
            }
            p += (elen + 7) & ~7L;
        }
        return found;
    }

    static IllegalArgumentException bad(String msg) {
        return new IllegalArgumentException("qcow2: " + msg);
    }
}
