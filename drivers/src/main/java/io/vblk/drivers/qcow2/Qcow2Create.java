package io.vblk.drivers.qcow2;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * Any thread: stateless.
 *
 * <p>Writes a new, empty qcow2 version 3 image without a backing file, as
 * {@code qemu-img create -f qcow2 -o cluster_size=65536,refcount_bits=16} lays it out: the header in
 * cluster 0, the refcount table in cluster 1, its one refcount block in cluster 2, the L1 table in
 * cluster 3 (every L2 entry unallocated, so every cluster reads from the backing node or as zeroes).
 * For images a program needs without qemu-img at hand (the seed-004 reproducer's top images).
 */
public final class Qcow2Create {
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);
    private static final int CLUSTER_BITS = 16;
    private static final long CLUSTER = 1L << CLUSTER_BITS;
    /** One L1 cluster of 8-byte entries, each L2 table mapping CLUSTER/8 clusters (qcow2.txt). */
    private static final long MAX_SIZE = (CLUSTER / 8) * (CLUSTER / 8) * CLUSTER;

    private Qcow2Create() {
    }

    /** Creates {@code path} (it must not exist) as an empty qcow2 image of {@code size} bytes. */
    public static void create(Path path, long size) throws IOException {
        if (size <= 0 || size % 512 != 0 || size > MAX_SIZE) {
            throw new IllegalArgumentException("qcow2 create: size must be a positive multiple of 512 up to "
                    + MAX_SIZE + " bytes, got " + size);
        }
        long l2Span = (CLUSTER / 8) * CLUSTER;
        int l1Entries = (int) ((size + l2Span - 1) / l2Span);
        try (Arena a = Arena.ofConfined();
             FileChannel ch = FileChannel.open(path, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            MemorySegment img = a.allocate(4 * CLUSTER, 8);
            // Header (qcow2.txt "Header"): big-endian fields at fixed offsets.
            img.set(Qcow2Header.U32, 0, Qcow2Header.MAGIC);
            img.set(Qcow2Header.U32, 4, 3);                    // version
            img.set(Qcow2Header.U32, 20, CLUSTER_BITS);        // cluster_bits
            img.set(Qcow2Header.U64, 24, size);                // size
            img.set(Qcow2Header.U32, 36, l1Entries);           // l1_size
            img.set(Qcow2Header.U64, 40, 3 * CLUSTER);         // l1_table_offset
            img.set(Qcow2Header.U64, 48, CLUSTER);             // refcount_table_offset
            img.set(Qcow2Header.U32, 56, 1);                   // refcount_table_clusters
            img.set(Qcow2Header.U32, 96, 4);                   // refcount_order: 16-bit refcounts
            img.set(Qcow2Header.U32, 100, Qcow2Header.V3_MIN_HEADER_LENGTH); // header_length
            // The header extension area that follows is all zeroes: the end-of-extensions marker.
            img.set(Qcow2Header.U64, CLUSTER, 2 * CLUSTER);    // refcount table[0] -> the refcount block
            for (int c = 0; c < 4; c++) {                      // the four metadata clusters are in use
                img.set(U16, 2 * CLUSTER + 2L * c, (short) 1);
            }
            ch.write(img.asByteBuffer(), 0); // the L1 cluster in full, all entries 0
            ch.force(true);
        }
    }
}
