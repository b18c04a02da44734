package io.vblk.virtio.blk;

import io.vblk.aio.metrics.LatencyHistogram;

/**
 * Home thread: the owning IoThread of the queue writes. Getters: any thread, a racy snapshot
 * (each long is read whole on 64-bit JVMs; counts may lag by the requests of one pass).
 *
 * <p>Counters of one virtio-blk queue. The queue increments plain fields it already holds; metrics
 * read them through the getters.
 */
public final class BlkQueueStats {
    /** Operation names, indexed by {@link #opIndex}: the {@code op} tag of the request meters. */
    public static final String[] OPS = {"read", "write", "flush", "get_id", "discard", "write_zeroes", "secure_erase",
            "unsupported"};
    public static final int OP_READ = 0;
    public static final int OP_WRITE = 1;
    public static final int OP_UNSUPPORTED = 7;

    long reads;
    long writes;
    long flushes;
    long getIds;
    long discards;
    long writeZeroes;
    long secureErases;
    long unsupportedTypes;
    long readBytes;
    long writtenBytes;
    long ioErrors;
    long unsupported;
    long merged;
    long driverSubmits;
    long kicks;
    long passes;
    /** Requests popped while the node's drained section was open (seed 003; 0 with the guard on). */
    long startedDrained;
    int inFlight;
    /** Requests held after an I/O error (werror / rerror = stop), counted in {@link #inFlight}. */
    int held;
    int maxInFlight;
    /** IOERR decided at parse (range, read-only, segments, arguments) vs from the driver's result. */
    long ioErrorsRequest;
    long ioErrorsDriver;
    /** UNSUPP for an unknown type, for a known one not negotiated or not allowed, and from the driver. */
    long unsuppType;
    long unsuppRequest;
    long unsuppDriver;
    /** Guest-visible latency per operation: pass start (pop) to the end of the completing section. */
    final LatencyHistogram[] latency = new LatencyHistogram[OPS.length];
    /** Chains available when a pass began popping. */
    final LatencyHistogram depthAtPop = new LatencyHistogram();

    BlkQueueStats() {
        for (int i = 0; i < latency.length; i++) {
            latency[i] = new LatencyHistogram();
        }
    }

    /** Counts one completed request of 5.2.6 {@code type}. Home thread: the queue's IoThread. */
    void count(int type, int status, boolean fromDriver, long dataBytes) {
        switch (type) {
            case BlkRequestType.IN -> {
                reads++;
                if (status == BlkStatus.OK) {
                    readBytes += dataBytes;
                }
            }
            case BlkRequestType.OUT -> {
                writes++;
                if (status == BlkStatus.OK) {
                    writtenBytes += dataBytes;
                }
            }
            case BlkRequestType.FLUSH -> flushes++;
            case BlkRequestType.GET_ID -> getIds++;
            case BlkRequestType.DISCARD -> discards++;
            case BlkRequestType.WRITE_ZEROES -> writeZeroes++;
            case BlkRequestType.SECURE_ERASE -> secureErases++;
            default -> unsupportedTypes++;
        }
        if (status == BlkStatus.IOERR) {
            ioErrors++;
            if (fromDriver) {
                ioErrorsDriver++;
            } else {
                ioErrorsRequest++;
            }
        } else if (status == BlkStatus.UNSUPP) {
            unsupported++;
            if (fromDriver) {
                unsuppDriver++;
            } else if (opIndex(type) == OP_UNSUPPORTED) {
                unsuppType++;
            } else {
                unsuppRequest++;
            }
        }
    }

    /** The {@link #OPS} index of a 5.2.6 request type. */
    public static int opIndex(int type) {
        return switch (type) {
            case BlkRequestType.IN -> 0;
            case BlkRequestType.OUT -> 1;
            case BlkRequestType.FLUSH -> 2;
            case BlkRequestType.GET_ID -> 3;
            case BlkRequestType.DISCARD -> 4;
            case BlkRequestType.WRITE_ZEROES -> 5;
            case BlkRequestType.SECURE_ERASE -> 6;
            default -> OP_UNSUPPORTED;
        };
    }

    /** Requests held after an I/O error until the device resumes. */
    public int held() {
        return held;
    }

    /** Completed requests of operation {@code op} ({@link #OPS} index). */
    public long requests(int op) {
        return switch (op) {
            case 0 -> reads;
            case 1 -> writes;
            case 2 -> flushes;
            case 3 -> getIds;
            case 4 -> discards;
            case 5 -> writeZeroes;
            case 6 -> secureErases;
            default -> unsupportedTypes;
        };
    }

    /** Latency of operation {@code op} ({@link #OPS} index), in nanoseconds; snapshots from any thread. */
    public LatencyHistogram latency(int op) {
        return latency[op];
    }

    /** Chains available when a pass began popping; snapshots from any thread. */
    public LatencyHistogram depthAtPop() {
        return depthAtPop;
    }

    /** IOERR decided while parsing: sector range, read-only device, segment count, arguments. */
    public long ioErrorsRequest() {
        return ioErrorsRequest;
    }

    /** IOERR from the driver: a failed or short transfer. */
    public long ioErrorsDriver() {
        return ioErrorsDriver;
    }

    /** UNSUPP for a request type vblk does not know. */
    public long unsuppType() {
        return unsuppType;
    }

    /** UNSUPP for a known request the device refuses (feature not negotiated, unmap flag, ...). */
    public long unsuppRequest() {
        return unsuppRequest;
    }

    /** UNSUPP because the driver cannot do the operation (EOPNOTSUPP). */
    public long unsuppDriver() {
        return unsuppDriver;
    }

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

    public long secureErases() {
        return secureErases;
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

    /** Requests taken while the device's node was drained: seed 003's leak, 0 with the guard on. */
    public long startedDrained() {
        return startedDrained;
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
        return reads + writes + flushes + getIds + discards + writeZeroes + secureErases + unsupportedTypes;
    }

    @Override
    public String toString() {
        return "BlkQueueStats[reads=" + reads + " writes=" + writes + " flushes=" + flushes + " getIds=" + getIds
                + " discards=" + discards + " writeZeroes=" + writeZeroes + " secureErases=" + secureErases
                + " unsupportedTypes=" + unsupportedTypes
                + " readBytes=" + readBytes + " writtenBytes=" + writtenBytes + " ioErrors=" + ioErrors
                + " unsupported=" + unsupported + " merged=" + merged + " driverSubmits=" + driverSubmits
                + " inFlight=" + inFlight + "]";
    }
}
