package io.vblk.virtio.blk;

import io.vblk.virtio.device.IoThreadMapping;
import io.vblk.virtio.queue.DescriptorChain;
import io.vblk.virtio.queue.SplitQueue;

import java.nio.charset.StandardCharsets;

/**
 * Any thread: a plain options object; the device copies what it needs at construction.
 *
 * <p>The options of one virtio-blk device, named as the command line names them. {@link #validate()}
 * fails start-up with a message that names the option and what it accepts (STYLE rule 10).
 */
public final class BlkDeviceConfig {
    /** QEMU's BDRV_REQUEST_MAX_SECTORS: the largest request its block layer passes (INT_MAX >> 9). */
    public static final int DEFAULT_MAX_DISCARD_SECTORS = Integer.MAX_VALUE >> BlkRequestType.SECTOR_SHIFT;
    /**
     * max_discard_seg / max_write_zeroes_seg (5.2.4). QEMU offers 1; vblk offers 32 so that a Linux
     * guest can send the discards it merges (blk-mq's multi-range discard) as one request. Each
     * segment is at most max_*_sectors (QEMU's BDRV_REQUEST_MAX_SECTORS by default) and the
     * segments of one request run one after the other, so 32 bounds the work of one request and the
     * per-slot segment table (512 bytes, allocated on a slot's first multi-segment request).
     */
    public static final int DEFAULT_MAX_SEG = 32;
    /** The largest max_*_seg vblk accepts (the segment table of one slot stays at 16 KiB). */
    public static final int MAX_SEG_LIMIT = 1024;

    /** num-queues: request queues (5.2.2), each mapped to an IoThread. */
    public int numQueues = 1;
    /** queue-size: the largest queue size the device accepts (2.6: a power of 2). */
    public int queueSize = 256;
    /** seg-max: data segments per request (5.2.4); 0 means queue-size - 2, as QEMU's seg-max-adjust. */
    public int segMax;
    /** logical-block-size: blk_size (5.2.4); raised to the driver's alignment when that is larger. */
    public int logicalBlockSize = 512;
    /** physical-block-size: gives topology.physical_block_exp; 0 means the logical block size. */
    public int physicalBlockSize;
    /** min-io-size / opt-io-size in bytes: topology hints (5.2.4), multiples of the logical block size. */
    public int minIoSize;
    public int optIoSize;
    /** read-only: refuse writes with IOERR (5.2.6.2) even if the driver could write. */
    public boolean readOnly;
    /** write-cache: the cache mode after reset (5.2.5 lets the device pick); true = writeback. */
    public boolean writeCache = true;
    /** serial: the GET_ID string, printable ASCII, at most 20 bytes (5.2.6). */
    public String serial = "";
    /** discard / write-zeroes: offer the commands when the driver can do them. */
    public boolean discard = true;
    public boolean writeZeroes = true;
    public int maxDiscardSectors = DEFAULT_MAX_DISCARD_SECTORS;
    public int maxWriteZeroesSectors = DEFAULT_MAX_DISCARD_SECTORS;
    /** max-discard-seg / max-write-zeroes-seg: segments per DISCARD / WRITE_ZEROES request. */
    public int maxDiscardSeg = DEFAULT_MAX_SEG;
    public int maxWriteZeroesSeg = DEFAULT_MAX_SEG;
    /** secure-erase: offer VIRTIO_BLK_F_SECURE_ERASE when the driver serves it; its limits as discard's. */
    public boolean secureErase = true;
    public int maxSecureEraseSectors = DEFAULT_MAX_DISCARD_SECTORS;
    public int maxSecureEraseSeg = DEFAULT_MAX_SEG;
    /** werror / rerror: what a failed write (flush, discard, write zeroes) / read does (QEMU's defaults). */
    public ErrorPolicy werror = ErrorPolicy.DEFAULT_WRITE;
    public ErrorPolicy rerror = ErrorPolicy.DEFAULT_READ;
    /** Where BLOCK_IO_ERROR goes; called on the device's control context. */
    public BlockEvents events = BlockEvents.LOG;
    /** request-merging: merge adjacent reads or writes of one queue pass into one driver request. */
    public boolean merge = true;
    /** Largest merged request in bytes. */
    public int maxMergeBytes = 4 << 20;
    /**
     * submit-batch: READs and WRITEs a pass gathers before it submits them and closes its
     * defer-call section (the batched {@code io_submit} and the guest notification run there), then
     * goes on popping in a new section; 0 = the whole pass in one section, as QEMU. A small batch
     * wakes the guest while the rest of a long pass is still being popped, so the two sides work at
     * once instead of in turns (docs/BENCHMARKS.md, "submit-batch").
     */
    public int submitBatch = DEFAULT_SUBMIT_BATCH;
    public static final int DEFAULT_SUBMIT_BATCH = 8;
    /** iothread-vq-mapping: where the queues live. Required. */
    public IoThreadMapping ioThreads;

    public BlkDeviceConfig() {
    }

    public BlkDeviceConfig numQueues(int n) {
        this.numQueues = n;
        return this;
    }

    public BlkDeviceConfig queueSize(int n) {
        this.queueSize = n;
        return this;
    }

    public BlkDeviceConfig segMax(int n) {
        this.segMax = n;
        return this;
    }

    public BlkDeviceConfig logicalBlockSize(int n) {
        this.logicalBlockSize = n;
        return this;
    }

    public BlkDeviceConfig physicalBlockSize(int n) {
        this.physicalBlockSize = n;
        return this;
    }

    public BlkDeviceConfig readOnly(boolean ro) {
        this.readOnly = ro;
        return this;
    }

    public BlkDeviceConfig writeCache(boolean wb) {
        this.writeCache = wb;
        return this;
    }

    public BlkDeviceConfig serial(String s) {
        this.serial = s;
        return this;
    }

    public BlkDeviceConfig discard(boolean on) {
        this.discard = on;
        return this;
    }

    public BlkDeviceConfig writeZeroes(boolean on) {
        this.writeZeroes = on;
        return this;
    }

    public BlkDeviceConfig secureErase(boolean on) {
        this.secureErase = on;
        return this;
    }

    public BlkDeviceConfig maxSecureEraseSectors(int n) {
        this.maxSecureEraseSectors = n;
        return this;
    }

    public BlkDeviceConfig maxSecureEraseSeg(int n) {
        this.maxSecureEraseSeg = n;
        return this;
    }

    public BlkDeviceConfig maxDiscardSectors(int n) {
        this.maxDiscardSectors = n;
        return this;
    }

    public BlkDeviceConfig maxWriteZeroesSectors(int n) {
        this.maxWriteZeroesSectors = n;
        return this;
    }

    public BlkDeviceConfig maxDiscardSeg(int n) {
        this.maxDiscardSeg = n;
        return this;
    }

    public BlkDeviceConfig maxWriteZeroesSeg(int n) {
        this.maxWriteZeroesSeg = n;
        return this;
    }

    public BlkDeviceConfig werror(ErrorPolicy p) {
        this.werror = p;
        return this;
    }

    public BlkDeviceConfig rerror(ErrorPolicy p) {
        this.rerror = p;
        return this;
    }

    public BlkDeviceConfig events(BlockEvents e) {
        this.events = e;
        return this;
    }

    public BlkDeviceConfig merge(boolean on) {
        this.merge = on;
        return this;
    }

    public BlkDeviceConfig maxMergeBytes(int n) {
        this.maxMergeBytes = n;
        return this;
    }

    public BlkDeviceConfig submitBatch(int n) {
        this.submitBatch = n;
        return this;
    }

    public BlkDeviceConfig ioThreads(IoThreadMapping m) {
        this.ioThreads = m;
        return this;
    }

    /** seg-max as it will be used. */
    public int effectiveSegMax() {
        return segMax == 0 ? Math.max(1, queueSize - 2) : segMax;
    }

    /** Throws {@link IllegalArgumentException} naming the first bad option and what it accepts. */
    public void validate() {
        // 5.2.4: num_queues is le16; vblk keeps it to what a host can serve with IoThreads.
        if (numQueues < 1 || numQueues > 256) {
            throw bad("num-queues", numQueues, "1..256");
        }
        // 2.6: Queue Size is a power of 2; vblk's rings are at most 1024 (SplitQueue.MAX_SIZE).
        if (queueSize < 2 || queueSize > SplitQueue.MAX_SIZE || Integer.bitCount(queueSize) != 1) {
            throw bad("queue-size", queueSize, "a power of two in 2.." + SplitQueue.MAX_SIZE);
        }
        int seg = effectiveSegMax();
        if (seg < 1 || seg > DescriptorChain.MAX_SEGMENTS) {
            throw bad("seg-max", segMax, "1.." + DescriptorChain.MAX_SEGMENTS + " (0 = queue-size - 2)");
        }
        if (logicalBlockSize < 512 || logicalBlockSize > 65536 || Integer.bitCount(logicalBlockSize) != 1) {
            throw bad("logical-block-size", logicalBlockSize, "a power of two in 512..65536");
        }
        if (physicalBlockSize != 0 && (physicalBlockSize < logicalBlockSize || physicalBlockSize > (1 << 20)
                || Integer.bitCount(physicalBlockSize) != 1)) {
            throw bad("physical-block-size", physicalBlockSize, "0 or a power of two from logical-block-size to 1M");
        }
        if (minIoSize < 0 || minIoSize % logicalBlockSize != 0 || minIoSize / logicalBlockSize > 0xffff) {
            throw bad("min-io-size", minIoSize, "a multiple of logical-block-size, at most 65535 blocks");
        }
        if (optIoSize < 0 || optIoSize % logicalBlockSize != 0) {
            throw bad("opt-io-size", optIoSize, "a multiple of logical-block-size");
        }
        if (serial == null || serial.length() > BlkRequestType.ID_BYTES
                || !StandardCharsets.US_ASCII.newEncoder().canEncode(serial)) {
            throw new IllegalArgumentException("option serial must be ASCII of at most " + BlkRequestType.ID_BYTES
                    + " characters, got \"" + serial + "\"");
        }
        if (maxDiscardSectors < 1) {
            throw bad("max-discard-sectors", maxDiscardSectors, "1.." + Integer.MAX_VALUE);
        }
        if (maxWriteZeroesSectors < 1) {
            throw bad("max-write-zeroes-sectors", maxWriteZeroesSectors, "1.." + Integer.MAX_VALUE);
        }
        if (maxDiscardSeg < 1 || maxDiscardSeg > MAX_SEG_LIMIT) {
            throw bad("max-discard-seg", maxDiscardSeg, "1.." + MAX_SEG_LIMIT);
        }
        if (maxWriteZeroesSeg < 1 || maxWriteZeroesSeg > MAX_SEG_LIMIT) {
            throw bad("max-write-zeroes-seg", maxWriteZeroesSeg, "1.." + MAX_SEG_LIMIT);
        }
        if (maxSecureEraseSectors < 1) {
            throw bad("max-secure-erase-sectors", maxSecureEraseSectors, "1.." + Integer.MAX_VALUE);
        }
        if (maxSecureEraseSeg < 1 || maxSecureEraseSeg > MAX_SEG_LIMIT) {
            throw bad("max-secure-erase-seg", maxSecureEraseSeg, "1.." + MAX_SEG_LIMIT);
        }
        if (werror == null || rerror == null || events == null) {
            throw new IllegalArgumentException("options werror, rerror and the event sink must be set");
        }
        if (maxMergeBytes < 512) {
            throw bad("max-merge-bytes", maxMergeBytes, "512.." + Integer.MAX_VALUE);
        }
        if (submitBatch < 0 || submitBatch > SplitQueue.MAX_SIZE) {
            throw bad("submit-batch", submitBatch, "0 (the whole pass) or 1.." + SplitQueue.MAX_SIZE);
        }
        if (ioThreads == null) {
            throw new IllegalArgumentException("option iothread-vq-mapping is required: name the IoThreads the "
                    + "queues run on (round-robin over a list, or one per queue)");
        }
        ioThreads.check(numQueues);
    }

    private static IllegalArgumentException bad(String option, long value, String accepts) {
        return new IllegalArgumentException("option " + option + " must be " + accepts + ", got " + value);
    }
}
