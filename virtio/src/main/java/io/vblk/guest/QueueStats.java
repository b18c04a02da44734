package io.vblk.guest;

/**
 * Home thread: the vCPU thread running the queue; read by others only after it stopped
 * (Thread.join publishes the fields). No locking.
 *
 * <p>What one guest queue did during a workload: request counts by kind and outcome, bytes,
 * notification traffic in both directions, verify results, and the latency histogram.
 */
public final class QueueStats {
    public final int queue;
    public final LatencyHistogram latency = new LatencyHistogram();

    /** Requests made available to the device. */
    public long posted;
    public long completed;
    /** Requests still in flight when the queue stopped (non-zero only after a stall or device bug). */
    public long inFlightAtEnd;
    public long reads;
    public long writes;
    public long bytesRead;
    public long bytesWritten;
    /** Requests that came back VIRTIO_BLK_S_IOERR. */
    public long ioErrors;
    /** Requests that came back VIRTIO_BLK_S_UNSUPP. */
    public long unsupported;
    /** Requests whose status byte was not written or is not a defined status. */
    public long badStatus;

    public long kicks;
    public long kicksSuppressed;
    /** Times the vCPU woke on its call eventfd. */
    public long wakeups;
    /** Device call eventfd writes (the counter values read, summed). */
    public long notifications;
    /** Passes over the used ring that found work. */
    public long reapPasses;

    /** Sectors whose verify header checked out on read. */
    public long verifiedSectors;
    /** Reads of blocks this run had not written (nothing to compare against). */
    public long unverifiedReads;
    public long verifyFailures;
    /** Blocks read back in the final verify pass. */
    public long readBackBlocks;

    public long elapsedNanos;
    /** CPU time of the vCPU thread over the run. */
    public long cpuNanos;
    /** Bytes the vCPU thread allocated over the run (-1 when the JVM cannot tell). */
    public long allocatedBytes;
    /** The first thing that went wrong (verify mismatch, stall, device bug), or null. */
    public String firstError;

    public QueueStats(int queue) {
        this.queue = queue;
    }

    void fail(String message) {
        if (firstError == null) {
            firstError = "queue " + queue + ": " + message;
        }
    }

    /** Adds every count of {@code o} (merging queues); the elapsed time is the longest. */
    public void add(QueueStats o) {
        latency.add(o.latency);
        posted += o.posted;
        completed += o.completed;
        inFlightAtEnd += o.inFlightAtEnd;
        reads += o.reads;
        writes += o.writes;
        bytesRead += o.bytesRead;
        bytesWritten += o.bytesWritten;
        ioErrors += o.ioErrors;
        unsupported += o.unsupported;
        badStatus += o.badStatus;
        kicks += o.kicks;
        kicksSuppressed += o.kicksSuppressed;
        wakeups += o.wakeups;
        notifications += o.notifications;
        reapPasses += o.reapPasses;
        verifiedSectors += o.verifiedSectors;
        unverifiedReads += o.unverifiedReads;
        verifyFailures += o.verifyFailures;
        readBackBlocks += o.readBackBlocks;
        elapsedNanos = Math.max(elapsedNanos, o.elapsedNanos);
        cpuNanos += o.cpuNanos;
        allocatedBytes = allocatedBytes < 0 || o.allocatedBytes < 0 ? -1 : allocatedBytes + o.allocatedBytes;
        if (firstError == null) {
            firstError = o.firstError;
        }
    }
}
