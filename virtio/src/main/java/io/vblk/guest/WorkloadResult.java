package io.vblk.guest;

import java.util.List;

/**
 * Any thread: built after the vCPU threads stopped; not modified afterwards.
 *
 * <p>What a {@link WorkloadRun} did: per-queue statistics, their sum, and the first error.
 *
 * @param perQueue one entry per queue that ran
 * @param total    the queues merged (elapsed = the longest queue's)
 * @param error    the first thing that went wrong, or null for a clean run
 */
public record WorkloadResult(Workload workload, List<QueueStats> perQueue, QueueStats total, String error) {

    public boolean ok() {
        return error == null;
    }

    /** Completed requests per second over the longest queue's run time. */
    public double iops() {
        return total.elapsedNanos == 0 ? 0 : total.completed * 1e9 / total.elapsedNanos;
    }

    /** Bytes moved (read + written) per second, in MB/s (10^6 bytes). */
    public double megabytesPerSecond() {
        return total.elapsedNanos == 0 ? 0 : (total.bytesRead + total.bytesWritten) * 1e3 / total.elapsedNanos;
    }

    /** Device notifications (call eventfd writes the guest consumed) per completed request. */
    public double notificationsPerRequest() {
        return total.completed == 0 ? 0 : (double) total.notifications / total.completed;
    }

    /** Kick eventfd writes per completed request. */
    public double kicksPerRequest() {
        return total.completed == 0 ? 0 : (double) total.kicks / total.completed;
    }
}
