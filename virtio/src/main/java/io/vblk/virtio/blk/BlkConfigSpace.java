package io.vblk.virtio.blk;

import io.vblk.virtio.queue.VirtioFeatures;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

import static io.vblk.virtio.queue.VirtioFeatures.bit;

/**
 * Any thread: a pure function of the device's fixed facts and its writeback mode.
 *
 * <p>Encodes a virtio-blk device's configuration space ({@link BlkConfigLayout}).
 */
final class BlkConfigSpace {
    private BlkConfigSpace() {
    }

    /** The configuration space of {@code dev} as the driver reads it (5.2.4). */
    static byte[] encode(BlkDevice dev, BlkDeviceConfig cfg) {
        long deviceFeatures = dev.deviceFeatures();
        int blkSize = dev.blockSize();
        byte[] b = new byte[BlkConfigLayout.SIZE];
        MemorySegment s = MemorySegment.ofArray(b);
        var u16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        var u32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        var u64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        s.set(u64, BlkConfigLayout.CAPACITY, dev.capacitySectors());
        // size_max stays 0: VIRTIO_BLK_F_SIZE_MAX is not offered. geometry likewise (GEOMETRY).
        s.set(u32, BlkConfigLayout.SEG_MAX, cfg.effectiveSegMax());
        s.set(u32, BlkConfigLayout.BLK_SIZE, blkSize);
        int phys = cfg.physicalBlockSize == 0 ? blkSize : Math.max(cfg.physicalBlockSize, blkSize);
        // 5.2.4 topology: "# of logical blocks per physical block (log2)".
        s.set(ValueLayout.JAVA_BYTE, BlkConfigLayout.PHYSICAL_BLOCK_EXP,
                (byte) (Integer.numberOfTrailingZeros(phys) - Integer.numberOfTrailingZeros(blkSize)));
        s.set(u16, BlkConfigLayout.MIN_IO_SIZE, (short) (cfg.minIoSize / blkSize));
        s.set(u32, BlkConfigLayout.OPT_IO_SIZE, cfg.optIoSize / blkSize);
        s.set(ValueLayout.JAVA_BYTE, BlkConfigLayout.WRITEBACK, (byte) (dev.writeback() ? 1 : 0));
        s.set(u16, BlkConfigLayout.NUM_QUEUES, (short) dev.numQueues());
        if ((deviceFeatures & bit(BlkFeatures.DISCARD)) != 0) {
            s.set(u32, BlkConfigLayout.MAX_DISCARD_SECTORS, cfg.maxDiscardSectors);
            s.set(u32, BlkConfigLayout.MAX_DISCARD_SEG, cfg.maxDiscardSeg);
            s.set(u32, BlkConfigLayout.DISCARD_SECTOR_ALIGNMENT, blkSize >> BlkRequestType.SECTOR_SHIFT);
        }
        if ((deviceFeatures & bit(BlkFeatures.WRITE_ZEROES)) != 0) {
            s.set(u32, BlkConfigLayout.MAX_WRITE_ZEROES_SECTORS, cfg.maxWriteZeroesSectors);
            s.set(u32, BlkConfigLayout.MAX_WRITE_ZEROES_SEG, cfg.maxWriteZeroesSeg);
            // 5.2.6.2: "SHOULD clear write_zeroes_may_unmap if and only if a write zeroes request
            // cannot result in deallocating one or more sectors".
            s.set(ValueLayout.JAVA_BYTE, BlkConfigLayout.WRITE_ZEROES_MAY_UNMAP,
                    (byte) (dev.driver().supportsDiscard() ? 1 : 0));
        }
        if ((deviceFeatures & bit(BlkFeatures.SECURE_ERASE)) != 0) {
            // 5.2.4: "max_secure_erase_sectors ... secure_erase_sector_alignment" in 512-byte sectors;
            // the alignment is the block size, as for discard (the same segments, the same checks).
            s.set(u32, BlkConfigLayout.MAX_SECURE_ERASE_SECTORS, cfg.maxSecureEraseSectors);
            s.set(u32, BlkConfigLayout.MAX_SECURE_ERASE_SEG, cfg.maxSecureEraseSeg);
            s.set(u32, BlkConfigLayout.SECURE_ERASE_SECTOR_ALIGNMENT, blkSize >> BlkRequestType.SECTOR_SHIFT);
        }
        // unused0 and unused1 stay 0 (5.2.5.2: "MUST initialize padding bytes ... to 0").
        return b;
    }

    /** 5.2.4: capacity in 512-byte sectors; a tail shorter than a sector is not addressable. */
    static long capacitySectors(long length) {
        long sectors = length >> BlkRequestType.SECTOR_SHIFT;
        if (sectors >= (1L << 52)) {
            throw new IllegalArgumentException("image of " + length + " bytes is larger than vblk's 2^61-byte limit");
        }
        return sectors;
    }

    /** Copies {@code length} bytes of {@code space} from {@code offset}; bytes past its end read as 0. */
    static void read(byte[] space, int offset, byte[] dst, int length) {
        if (offset < 0 || length < 0 || length > dst.length) {
            throw new IndexOutOfBoundsException("config read at " + offset + " of " + length + " bytes");
        }
        for (int i = 0; i < length; i++) {
            int o = offset + i;
            dst[i] = o < space.length ? space[o] : 0;
        }
    }

    /**
     * The writeback value of a driver's config write (5.2.6.1): 0 or 1 for a one-byte write of the
     * writeback field with VIRTIO_BLK_F_CONFIG_WCE negotiated, else -1 (the write changes nothing).
     */
    static int writebackWrite(int offset, byte[] src, int length, long driverFeatures) {
        if (offset != BlkConfigLayout.WRITEBACK || length != 1 || src.length < 1
                || !VirtioFeatures.has(driverFeatures, BlkFeatures.CONFIG_WCE)) {
            return -1;
        }
        int v = src[0];
        return v == 0 || v == 1 ? v : -1;
    }
}
