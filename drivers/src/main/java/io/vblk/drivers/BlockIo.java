package io.vblk.drivers;

import java.lang.foreign.Arena;

/**
 * Home thread: the owning IoThread of the channel it is submitted to. No locking.
 *
 * <p>One block request as a driver sees it: a reusable object owned by its submitter (a virtio
 * request slot, a benchmark loop), filled in before {@link BlockChannel#submit} and completed by
 * the driver exactly once through {@link IoCompletion#ioCompleted}. Nothing is allocated per
 * request: the submitter keeps a pool of these.
 */
public final class BlockIo {
    /** Operation codes. */
    public static final int READ = 0;
    public static final int WRITE = 1;
    public static final int FLUSH = 2;
    public static final int DISCARD = 3;
    public static final int WRITE_ZEROES = 4;
    /**
     * Erase the range so that its old contents cannot be read back (virtio-blk SECURE_ERASE): what
     * that guarantees is the driver's ({@link BlockDriver#supportsSecureErase}).
     */
    public static final int SECURE_ERASE = 5;

    /** WRITE_ZEROES may deallocate (virtio-blk VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP). */
    public static final int FLAG_MAY_UNMAP = 1;
    /** Write is durable on completion (forced unit access). */
    public static final int FLAG_FUA = 2;

    public int op;
    /** Byte offset into the device. */
    public long offset;
    /** Byte length for DISCARD, WRITE_ZEROES and SECURE_ERASE; READ/WRITE use {@link #iov}'s total length. */
    public long length;
    public int flags;
    /** Buffers for READ and WRITE. */
    public final IoVec iov;
    /** Who hears about completion. */
    public IoCompletion completion;
    /** Free for the submitter (e.g. its request slot index). */
    public int tag;
    /** Free for the submitter (e.g. its request object). */
    public Object owner;

    public BlockIo(Arena arena, int maxSegments) {
        this.iov = new IoVec(arena, maxSegments);
    }

    /** Prepares a READ or WRITE; the caller fills {@link #iov} afterwards (cleared here). */
    public BlockIo rw(int op, long offset, IoCompletion completion) {
        this.op = op;
        this.offset = offset;
        this.length = 0;
        this.flags = 0;
        this.completion = completion;
        iov.clear();
        return this;
    }

    /** Prepares a FLUSH, DISCARD, WRITE_ZEROES or SECURE_ERASE over {@code [offset, offset+length)}. */
    public BlockIo range(int op, long offset, long length, int flags, IoCompletion completion) {
        this.op = op;
        this.offset = offset;
        this.length = length;
        this.flags = flags;
        this.completion = completion;
        iov.clear();
        return this;
    }

    /** Bytes the request covers. */
    public long byteLength() {
        return op == READ || op == WRITE ? iov.totalLength() : length;
    }

    public static String opName(int op) {
        return switch (op) {
            case READ -> "read";
            case WRITE -> "write";
            case FLUSH -> "flush";
            case DISCARD -> "discard";
            case WRITE_ZEROES -> "write-zeroes";
            case SECURE_ERASE -> "secure-erase";
            default -> "op" + op;
        };
    }

    @Override
    public String toString() {
        return "BlockIo[" + opName(op) + " off=" + offset + " len=" + byteLength() + "]";
    }
}
