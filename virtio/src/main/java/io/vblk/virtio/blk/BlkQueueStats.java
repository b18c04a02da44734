package io.vblk.virtio.blk;

/**
 * Home thread: the owning IoThread of the queue writes. Getters: any thread, a racy snapshot
 * (each long is read whole on 64-bit JVMs; counts may lag by the requests of one pass).
 *
 * <p>Counters of one virtio-blk queue. The queue increments plain fields it already holds; metrics
 * read them through the getters.
 */
public final class BlkQueueStats {
    long reads;
    long writes;
    long flushes;
    long getIds;
    long discards;
    long writeZeroes;
    long unsupportedTypes;
    long readBytes;
    long writtenBytes;
    long ioErrors;
    long unsupported;
    long merged;
    long driverSubmits;
    long kicks;
    long passes;
    int inFlight;
    int maxInFlight;

    /** Completed VIRTIO_BLK_T_IN requests. */
    public long reads() {
        return reads;
    }

    /** Completed VIRTIO_BLK_T_OUT requests. */
    public long writes() {
        return writes;
    }

    public long flushes() {
        return flushes;
    }

    public long getIds() {
        return getIds;
    }

    public long discards() {
        return discards;
    }

    public long writeZeroes() {
        return writeZeroes;
    }

    /** Requests of a type vblk does not serve (answered UNSUPP). */
    public long unsupportedTypes() {
        return unsupportedTypes;
    }

    /** Bytes read for the guest by requests that completed OK. */
    public long readBytes() {
        return readBytes;
    }

    /** Bytes written for the guest by requests that completed OK. */
    public long writtenBytes() {
        return writtenBytes;
    }

    /** Requests answered VIRTIO_BLK_S_IOERR. */
    public long ioErrors() {
        return ioErrors;
    }

    /** Requests answered VIRTIO_BLK_S_UNSUPP. */
    public long unsupported() {
        return unsupported;
    }

    /** Requests merged into a neighbour's driver request. */
    public long merged() {
        return merged;
    }

    /** Driver requests submitted (merged requests count once). */
    public long driverSubmits() {
        return driverSubmits;
    }

    /** Kick handler runs (guest notifications and drained-section re-checks). */
    public long kicks() {
        return kicks;
    }

    /** Processing passes over the avail ring. */
    public long passes() {
        return passes;
    }

    /** Requests popped and not yet completed. */
    public int inFlight() {
        return inFlight;
    }

    public int maxInFlight() {
        return maxInFlight;
    }

    /** All completed requests. */
    public long completed() {
        return reads + writes + flushes + getIds + discards + writeZeroes + unsupportedTypes;
    }

    @Override
    public String toString() {
        return "BlkQueueStats[reads=" + reads + " writes=" + writes + " flushes=" + flushes + " getIds=" + getIds
                + " discards=" + discards + " writeZeroes=" + writeZeroes + " unsupportedTypes=" + unsupportedTypes
                + " readBytes=" + readBytes + " writtenBytes=" + writtenBytes + " ioErrors=" + ioErrors
                + " unsupported=" + unsupported + " merged=" + merged + " driverSubmits=" + driverSubmits
                + " inFlight=" + inFlight + "]";
    }
}
