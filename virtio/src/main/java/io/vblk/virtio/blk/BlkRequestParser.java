package io.vblk.virtio.blk;

import io.vblk.drivers.BlockIo;
import io.vblk.drivers.IoCompletion;
import io.vblk.drivers.IoVec;
import io.vblk.virtio.queue.DescriptorChain;

import java.nio.charset.StandardCharsets;

import static io.vblk.virtio.blk.BlkRequestType.SECTOR_SHIFT;

/**
 * Home thread: the owning IoThread of the queue. No locking. Built at queue start from the
 * negotiated features; immutable after.
 *
 * <p>Parses and validates one popped chain as a virtio-blk request (virtio 1.2 section 5.2.6) into
 * a request slot, before anything runs (STYLE rule 8: parse before execute). It decides one of:
 * submit to the driver (READ/WRITE, which may merge, or another driver op), complete now with a
 * status, or a framing violation that needs a device reset.
 */
final class BlkRequestParser {
    /** A READ or WRITE ready for the driver; may merge with neighbours. */
    static final int SUBMIT_RW = 0;
    /** FLUSH, DISCARD, WRITE_ZEROES or SECURE_ERASE ready for the driver. */
    static final int SUBMIT_OTHER = 1;
    /** Answered without the driver: {@code status} and {@code usedLen} are set. */
    static final int COMPLETE = 2;
    /** The chain cannot carry a request; {@link #violation} tells why. */
    static final int VIOLATION = 3;

    /** Changed only by {@link #resized}, on the queue's thread, while its node is drained. */
    private long capacitySectors;
    private final int blkSize;
    private final boolean readOnly;
    private final boolean discard;
    private final boolean writeZeroes;
    private final boolean secureErase;
    private final int maxDiscardSectors;
    private final int maxWriteZeroesSectors;
    private final int maxSecureEraseSectors;
    private final int maxDiscardSeg;
    private final int maxWriteZeroesSeg;
    private final int maxSecureEraseSeg;
    /** The node allows discard: WRITE_ZEROES with the unmap flag may punch a hole. */
    private final boolean mayUnmap;
    private final byte[] id = new byte[BlkRequestType.ID_BYTES];
    /** The GET_LIFETIME reply ({@code struct virtio_blk_lifetime}), or null when VIRTIO_BLK_F_LIFETIME is not negotiated. */
    private final byte[] lifetime;
    private final IoCompletion completion;

    BlkRequestViolation violation = new BlkRequestViolation();

    /** A reusable record of the last framing violation (no allocation on the hot path). */
    static final class BlkRequestViolation {
        BlkViolation kind;
        int head;
    }

    BlkRequestParser(long capacitySectors, int blkSize, boolean readOnly, boolean discard, boolean writeZeroes,
                     boolean secureErase, boolean mayUnmap, io.vblk.drivers.DeviceLifetime lifetime, BlkDeviceConfig cfg,
                     IoCompletion completion) {
        // 5.2.6: le16 pre_eol_info, le16 device_lifetime_est_typ_a, le16 device_lifetime_est_typ_b.
        this.lifetime = lifetime == null ? null : new byte[]{(byte) lifetime.preEolInfo(), 0, (byte) lifetime.typA(), 0,
                (byte) lifetime.typB(), 0};
        this.capacitySectors = capacitySectors;
        this.blkSize = blkSize;
        this.readOnly = readOnly;
        this.discard = discard;
        this.writeZeroes = writeZeroes;
        this.secureErase = secureErase;
        this.mayUnmap = mayUnmap;
        this.maxDiscardSectors = cfg.maxDiscardSectors;
        this.maxWriteZeroesSectors = cfg.maxWriteZeroesSectors;
        this.maxDiscardSeg = cfg.maxDiscardSeg;
        this.maxWriteZeroesSeg = cfg.maxWriteZeroesSeg;
        this.maxSecureEraseSectors = cfg.maxSecureEraseSectors;
        this.maxSecureEraseSeg = cfg.maxSecureEraseSeg;
        byte[] s = cfg.serial.getBytes(StandardCharsets.US_ASCII);
        // 5.2.6: "a NUL-padded ASCII string up to 20 bytes long"; the rest of id stays 0.
        System.arraycopy(s, 0, id, 0, Math.min(s.length, id.length));
        this.completion = completion;
    }

    /** The node was resized (5.2.4 capacity). Queue thread, inside the resize's drained section. */
    void resized(long sectors) {
        capacitySectors = sectors;
    }

    /**
     * Parses {@code c} into {@code r}.
     *
     * @param writeThrough whether writes must be stable on completion (5.2.6.2 cases 1 and 2)
     */
    int parse(DescriptorChain c, BlkRequest r, boolean writeThrough) {
        r.head = c.head();
        r.mergeNext = null;
        r.mergeTail = r;
        r.expected = -1;
        r.dataBytes = 0;
        r.statusMem = null;
        r.segNext = 0;
        r.segCount = 0;
        // 5.2.6: header first, status byte last; without them there is nothing to answer.
        if (c.writableBytes() < BlkRequestHeaderLayout.STATUS_BYTES) {
            return violation(BlkViolation.MISSING_STATUS, r);
        }
        locateStatus(c, r);
        if (c.readableBytes() < BlkRequestHeaderLayout.BYTES) {
            return violation(BlkViolation.MISSING_HEADER, r);
        }
        r.type = c.readLe32(BlkRequestHeaderLayout.TYPE);
        r.sector = c.readLe64(BlkRequestHeaderLayout.SECTOR);
        r.usedLen = BlkRequestHeaderLayout.STATUS_BYTES;
        return switch (r.type) {
            case BlkRequestType.IN -> parseRw(c, r, BlockIo.READ, false);
            case BlkRequestType.OUT -> parseRw(c, r, BlockIo.WRITE, writeThrough);
            case BlkRequestType.FLUSH -> {
                // 5.2.6.1: sector 0, no data; a device need not check either (QEMU does not).
                r.io.range(BlockIo.FLUSH, 0, 0, 0, completion);
                yield SUBMIT_OTHER;
            }
            case BlkRequestType.GET_ID -> getId(c, r);
            case BlkRequestType.GET_LIFETIME -> getLifetime(c, r);
            case BlkRequestType.DISCARD -> parseRanges(c, r, BlockIo.DISCARD, writeThrough);
            case BlkRequestType.WRITE_ZEROES -> parseRanges(c, r, BlockIo.WRITE_ZEROES, writeThrough);
            case BlkRequestType.SECURE_ERASE -> parseRanges(c, r, BlockIo.SECURE_ERASE, writeThrough);
            // 5.2.6: anything else is unknown: UNSUPP ("for a request unsupported by device").
            default -> done(r, BlkStatus.UNSUPP);
        };
    }

    private int parseRw(DescriptorChain c, BlkRequest r, int op, boolean fua) {
        long len = op == BlockIo.READ
                ? c.writableBytes() - BlkRequestHeaderLayout.STATUS_BYTES
                : c.readableBytes() - BlkRequestHeaderLayout.BYTES;
        r.dataBytes = len;
        if (op == BlockIo.WRITE && readOnly) {
            // 5.2.6.2: "A device MUST set the status byte to VIRTIO_BLK_S_IOERR for a write request
            // if the VIRTIO_BLK_F_RO feature if offered, and MUST NOT write any data."
            return done(r, BlkStatus.IOERR);
        }
        // 5.2.6.1: data is a multiple of 512 bytes and inside capacity; vblk also requires
        // blk_size alignment, as QEMU's virtio_blk_sect_range_ok does.
        if (!rangeOk(r.sector, len)) {
            return done(r, BlkStatus.IOERR);
        }
        r.io.rw(op, r.sector << SECTOR_SHIFT, completion);
        if (fua) {
            r.io.flags = BlockIo.FLAG_FUA;
        }
        boolean fits = op == BlockIo.READ
                ? addRange(c, r.io.iov, c.readableSegments(), c.segments(), 0, len)
                : addRange(c, r.io.iov, 0, c.readableSegments(), BlkRequestHeaderLayout.BYTES, len);
        if (!fits) {
            // More segments than seg_max allows (5.2.4): the driver could not take it as one request.
            return done(r, BlkStatus.IOERR);
        }
        if (len == 0) {
            return done(r, BlkStatus.OK);
        }
        r.expected = len;
        return SUBMIT_RW;
    }

    private int getId(DescriptorChain c, BlkRequest r) {
        // 5.2.6.1: data is 20 bytes; write what the guest gave room for.
        int n = (int) Math.min(BlkRequestType.ID_BYTES, c.writableBytes() - BlkRequestHeaderLayout.STATUS_BYTES);
        c.writeBytes(0, id, 0, n);
        r.dataBytes = n;
        r.usedLen = n + BlkRequestHeaderLayout.STATUS_BYTES;
        return done(r, BlkStatus.OK);
    }

    /**
     * 5.2.6 GET_LIFETIME: the 6-byte {@code struct virtio_blk_lifetime} into the data part. UNSUPP
     * without VIRTIO_BLK_F_LIFETIME; IOERR when the guest gave less room than the struct (the
     * driver "MUST NOT" send that, 5.2.6.1, and a partial struct would be misread).
     */
    private int getLifetime(DescriptorChain c, BlkRequest r) {
        if (lifetime == null) {
            return done(r, BlkStatus.UNSUPP);
        }
        if (c.writableBytes() - BlkRequestHeaderLayout.STATUS_BYTES < lifetime.length) {
            return done(r, BlkStatus.IOERR);
        }
        c.writeBytes(0, lifetime, 0, lifetime.length);
        r.dataBytes = lifetime.length;
        r.usedLen = lifetime.length + BlkRequestHeaderLayout.STATUS_BYTES;
        return done(r, BlkStatus.OK);
    }

    /**
     * DISCARD, WRITE_ZEROES and SECURE_ERASE: the same data (5.2.6, {@code struct
     * virtio_blk_discard_write_zeroes} segments) and the same checks, each with its own limits
     * (5.2.4: max_*_sectors, max_*_seg) and its own driver operation ({@code op}).
     */
    private int parseRanges(DescriptorChain c, BlkRequest r, int op, boolean fua) {
        boolean zeroes = op == BlockIo.WRITE_ZEROES;
        if (!negotiated(op)) {
            // Feature not negotiated: the command is unsupported.
            return done(r, BlkStatus.UNSUPP);
        }
        if (readOnly) {
            // 5.2.6.2: a read-only device refuses every write; these three commands write.
            return done(r, BlkStatus.IOERR);
        }
        long len = c.readableBytes() - BlkRequestHeaderLayout.BYTES;
        r.dataBytes = len;
        // 5.2.6.1: data is a non-empty multiple of the segment size. A request breaking that cannot
        // be executed as sent: IOERR.
        if (len <= 0 || len % DiscardWriteZeroesLayout.BYTES != 0) {
            return done(r, BlkStatus.IOERR);
        }
        long n = len / DiscardWriteZeroesLayout.BYTES;
        // 5.2.4: at most max_discard_seg / max_write_zeroes_seg segments. More: UNSUPP, QEMU's answer
        // (virtio_blk_handle_discard_write_zeroes) for a request with more segments than it offers.
        if (n > maxSeg(op)) {
            return done(r, BlkStatus.UNSUPP);
        }
        // Parse before execute: every segment is checked before the first one runs.
        int first = -1;
        for (int k = 0; k < n; k++) {
            long base = BlkRequestHeaderLayout.BYTES + (long) k * DiscardWriteZeroesLayout.BYTES;
            long sector = c.readLe64(base + DiscardWriteZeroesLayout.SECTOR);
            long sectors = Integer.toUnsignedLong(c.readLe32(base + DiscardWriteZeroesLayout.NUM_SECTORS));
            int flags = c.readLe32(base + DiscardWriteZeroesLayout.FLAGS);
            int status = checkSegment(op, sector, sectors, flags);
            if (status != BlkStatus.OK) {
                return done(r, status);
            }
            if (sectors == 0) {
                continue;
            }
            int ioFlags = 0;
            if (zeroes && (flags & DiscardWriteZeroesLayout.FLAG_UNMAP) != 0 && mayUnmap) {
                // 5.2.6.2: with unmap the device MAY deallocate; vblk punches a hole when the node
                // allows discard (QEMU's BDRV_REQ_MAY_UNMAP), else it writes zeroes.
                ioFlags |= BlockIo.FLAG_MAY_UNMAP;
            }
            if (zeroes && fua) {
                ioFlags |= BlockIo.FLAG_FUA;
            }
            if (first < 0) {
                first = k;
                r.sector = sector;
                r.io.range(op, sector << SECTOR_SHIFT,
                        sectors << SECTOR_SHIFT, ioFlags, completion);
            } else {
                // Later segments run one after the other (nextSegment), from the slot's table.
                long[] t = r.segments(2 * maxSeg(op));
                t[2 * r.segCount] = sector;
                t[2 * r.segCount + 1] = sectors | ((long) ioFlags << 32);
                r.segCount++;
            }
        }
        return first < 0 ? done(r, BlkStatus.OK) : SUBMIT_OTHER;
    }

    private boolean negotiated(int op) {
        return switch (op) {
            case BlockIo.DISCARD -> discard;
            case BlockIo.WRITE_ZEROES -> writeZeroes;
            default -> secureErase;
        };
    }

    private int maxSeg(int op) {
        return switch (op) {
            case BlockIo.DISCARD -> maxDiscardSeg;
            case BlockIo.WRITE_ZEROES -> maxWriteZeroesSeg;
            default -> maxSecureEraseSeg;
        };
    }

    private int maxSectors(int op) {
        return switch (op) {
            case BlockIo.DISCARD -> maxDiscardSectors;
            case BlockIo.WRITE_ZEROES -> maxWriteZeroesSectors;
            default -> maxSecureEraseSectors;
        };
    }

    /** A segment's status: OK when it can run, else what the whole request gets. */
    private int checkSegment(int op, long sector, long sectors, int flags) {
        boolean zeroes = op == BlockIo.WRITE_ZEROES;
        // 5.2.6.2: "The device MUST set the status byte to VIRTIO_BLK_S_UNSUPP for discard, secure
        // erase and write zeroes commands if any unknown flag is set. Furthermore, the device MUST
        // set the status byte to VIRTIO_BLK_S_UNSUPP for discard commands if the unmap flag is set."
        // Unmap asks for deallocation, which only write zeroes defines; a secure erase with it is
        // refused like a discard (Linux never sets it there).
        if ((flags & ~DiscardWriteZeroesLayout.FLAG_UNMAP) != 0) {
            return BlkStatus.UNSUPP;
        }
        if (!zeroes && (flags & DiscardWriteZeroesLayout.FLAG_UNMAP) != 0) {
            return BlkStatus.UNSUPP;
        }
        // 5.2.4: at most max_discard_sectors / max_write_zeroes_sectors per segment; 5.2.6.1: inside
        // capacity. Out of either: IOERR (as QEMU).
        if (sectors > maxSectors(op)
                || !rangeOk(sector, sectors << SECTOR_SHIFT)) {
            return BlkStatus.IOERR;
        }
        return BlkStatus.OK;
    }

    /**
     * After a segment of a multi-segment DISCARD / WRITE_ZEROES / SECURE_ERASE completed: prepares {@code r.io} for
     * the next one and returns true, or false when none is left.
     */
    boolean nextSegment(BlkRequest r) {
        if (r.segNext >= r.segCount) {
            return false;
        }
        long[] t = r.segTable;
        int k = r.segNext++;
        long sectors = t[2 * k + 1] & 0xffff_ffffL;
        r.io.range(r.io.op, t[2 * k] << SECTOR_SHIFT, sectors << SECTOR_SHIFT, (int) (t[2 * k + 1] >>> 32),
                completion);
        return true;
    }

    /** [sector, sector + bytes) is whole blocks inside capacity (all checks overflow-safe). */
    private boolean rangeOk(long sector, long bytes) {
        if (sector < 0 || bytes < 0 || (bytes & (BlkRequestType.SECTOR_SIZE - 1)) != 0) {
            return false;
        }
        long blkSectors = blkSize >> SECTOR_SHIFT;
        if ((sector & (blkSectors - 1)) != 0 || bytes % blkSize != 0) {
            return false;
        }
        return sector <= capacitySectors && (bytes >> SECTOR_SHIFT) <= capacitySectors - sector;
    }

    private static int done(BlkRequest r, int status) {
        r.status = status;
        return COMPLETE;
    }

    private int violation(BlkViolation kind, BlkRequest r) {
        violation.kind = kind;
        violation.head = r.head;
        return VIOLATION;
    }

    /** The last byte of the writable part carries the status. */
    private static void locateStatus(DescriptorChain c, BlkRequest r) {
        int last = c.segments() - 1;
        r.statusMem = c.memoryOf(last);
        r.statusOff = c.offsetOf(last) + c.length(last) - 1;
    }

    /**
     * Appends bytes {@code [skip, skip + len)} of segments {@code [from, to)} to {@code iov};
     * false when they need more entries than it has.
     */
    static boolean addRange(DescriptorChain c, IoVec iov, int from, int to, long skip, long len) {
        long left = len;
        long s = skip;
        for (int i = from; i < to && left > 0; i++) {
            long segLen = c.length(i);
            if (s >= segLen) {
                s -= segLen;
                continue;
            }
            long n = Math.min(segLen - s, left);
            if (!iov.add(c.address(i) + s, n)) {
                return false;
            }
            left -= n;
            s = 0;
        }
        return left == 0;
    }
}
