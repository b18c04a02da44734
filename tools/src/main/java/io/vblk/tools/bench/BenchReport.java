package io.vblk.tools.bench;

import io.vblk.guest.LatencyHistogram;
import io.vblk.guest.QueueStats;
import io.vblk.guest.Workload;
import io.vblk.guest.WorkloadResult;

import java.time.Duration;
import java.util.Locale;

/**
 * Any thread: immutable.
 *
 * <p>The figures of one {@code vblk bench} run, printed as text or as one JSON object with the same
 * content.
 *
 * @param target          where the device ran ("in-process", later "vhost-user:PATH")
 * @param driver          the driver spec as given, null when the back-end is remote
 * @param queues          queues driven
 * @param iothreads       IoThreads serving them, -1 when the back-end is remote
 * @param guestPolls      the guest polled the used ring instead of taking interrupts
 * @param features        features negotiated, by name
 * @param result          what the guest measured
 * @param cpuIoThreads    CPU nanoseconds of the IoThreads during the run
 * @param cpuGuest        CPU nanoseconds of the guest vCPU threads
 * @param cpuControl      CPU nanoseconds of the control (main-loop) thread
 * @param ioSubmitCalls   io_submit system calls made by the AIO engines, -1 when the driver uses none
 * @param meters          the device's, loops' and engines' meters at the end of the run, by their
 *                        Prometheus names (empty when the target is not in this process)
 */
public record BenchReport(String target, String driver, Workload workload, int queues, int iothreads,
                          boolean guestPolls, String features, WorkloadResult result, long cpuIoThreads,
                          long cpuGuest, long cpuControl, long ioSubmitCalls, java.util.Map<String, Number> meters) {

    public long completed() {
        return result.total().completed;
    }

    public long cpuTotal() {
        return cpuIoThreads + cpuGuest + cpuControl;
    }

    /** CPU nanoseconds per completed request over all threads of the run. */
    public double cpuNanosPerRequest() {
        return completed() == 0 ? Double.NaN : (double) cpuTotal() / completed();
    }

    public double ioSubmitPerRequest() {
        return ioSubmitCalls < 0 || completed() == 0 ? Double.NaN : (double) ioSubmitCalls / completed();
    }

    private String runLength() {
        Workload w = workload;
        return w.requests() > 0 ? "requests=" + w.requests() : "duration=" + Units.formatDuration(Duration.ofNanos(w.durationNanos()));
    }

    public String text() {
        Workload w = workload;
        QueueStats t = result.total();
        LatencyHistogram h = t.latency;
        StringBuilder sb = new StringBuilder();
        sb.append(String.format(Locale.ROOT, "vblk bench: target=%s%s rw=%s%s bs=%s qd=%d queues=%d%s %s%s%s%n",
                target, driver == null ? "" : " driver=" + driver, w.pattern().cliName(),
                w.pattern().reads() && w.pattern().writes() ? " rwmixread=" + w.readPercent() : "",
                Units.formatSize(w.blockSize()), w.queueDepth(), queues, iothreads < 0 ? "" : " iothreads=" + iothreads,
                runLength(),
                w.verify() ? " verify" : "", guestPolls ? " guest=poll" : ""));
        sb.append("  features      ").append(features).append('\n');
        sb.append(String.format(Locale.ROOT, "  requests      %d in %.2f s (reads %d, writes %d, errors %d)%n",
                t.completed, t.elapsedNanos / 1e9, t.reads, t.writes, t.ioErrors + t.unsupported + t.badStatus));
        sb.append(String.format(Locale.ROOT, "  IOPS          %.0f%n", result.iops()));
        sb.append(String.format(Locale.ROOT, "  bandwidth     %.1f MB/s%n", result.megabytesPerSecond()));
        sb.append(String.format(Locale.ROOT, "  latency us    p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f%n",
                h.percentile(50) / 1e3, h.percentile(99) / 1e3, h.percentile(99.9) / 1e3, h.max() / 1e3,
                h.mean() / 1e3));
        sb.append(String.format(Locale.ROOT, "  notifications %.4f per request (%d call eventfd writes, %d guest wake-ups)%n",
                result.notificationsPerRequest(), t.notifications, t.wakeups));
        sb.append(String.format(Locale.ROOT, "  kicks         %.4f per request (%d kick eventfd writes, %d suppressed by the device)%n",
                result.kicksPerRequest(), t.kicks, t.kicksSuppressed));
        if (iothreads < 0) {
            sb.append("  io_submit     not visible (the back-end is another process)\n");
        } else if (ioSubmitCalls < 0) {
            sb.append("  io_submit     none (driver makes no io_submit calls)\n");
        } else {
            sb.append(String.format(Locale.ROOT, "  io_submit     %.4f per request (%d calls)%n", ioSubmitPerRequest(),
                    ioSubmitCalls));
        }
        if (iothreads < 0) {
            sb.append(String.format(Locale.ROOT, "  CPU           %.2f us per request in this process (guest %.2f, front-end %.2f;"
                    + " the back-end's threads are not counted)%n", cpuNanosPerRequest() / 1e3, perRequestUs(cpuGuest),
                    perRequestUs(cpuControl)));
        } else {
            sb.append(String.format(Locale.ROOT, "  CPU           %.2f us per request (iothreads %.2f, guest %.2f, control %.2f)%n",
                    cpuNanosPerRequest() / 1e3, perRequestUs(cpuIoThreads), perRequestUs(cpuGuest),
                    perRequestUs(cpuControl)));
        }
        if (w.verify()) {
            sb.append(String.format(Locale.ROOT, "  verify        %d sectors checked, %d blocks read back, %d failures, %d reads of unwritten blocks%n",
                    t.verifiedSectors, t.readBackBlocks, t.verifyFailures, t.unverifiedReads));
        }
        sb.append("  result        ").append(result.ok() ? "ok" : "FAILED: " + result.error()).append('\n');
        return sb.toString();
    }

    private double perRequestUs(long nanos) {
        return completed() == 0 ? Double.NaN : nanos / 1e3 / completed();
    }

    public String json() {
        Workload w = workload;
        QueueStats t = result.total();
        LatencyHistogram h = t.latency;
        Json j = new Json().begin();
        j.field("target", target).field("driver", driver).field("rw", w.pattern().cliName())
                .field("rwmixread", w.effectiveReadPercent()).field("bs", w.blockSize()).field("qd", w.queueDepth())
                .field("queues", queues);
        if (iothreads < 0) {
            j.nullField("iothreads");
        } else {
            j.field("iothreads", iothreads);
        }
        if (w.requests() > 0) {
            j.field("requests_asked", w.requests());
        } else {
            j.field("duration_s", w.durationNanos() / 1e9, 3);
        }
        j.field("verify", w.verify()).field("guest_polls", guestPolls).field("features", features)
                .field("seed", w.seed());
        j.field("requests", t.completed).field("reads", t.reads).field("writes", t.writes)
                .field("errors", t.ioErrors + t.unsupported + t.badStatus)
                .field("elapsed_s", t.elapsedNanos / 1e9, 3)
                .field("iops", result.iops(), 1)
                .field("mb_per_s", result.megabytesPerSecond(), 2);
        j.object("latency_us").field("min", h.min() / 1e3, 2).field("p50", h.percentile(50) / 1e3, 2)
                .field("p99", h.percentile(99) / 1e3, 2).field("p99_9", h.percentile(99.9) / 1e3, 2)
                .field("max", h.max() / 1e3, 2).field("mean", h.mean() / 1e3, 2).end();
        j.field("notifications", t.notifications).field("notifications_per_request", result.notificationsPerRequest(), 4)
                .field("guest_wakeups", t.wakeups)
                .field("kicks", t.kicks).field("kicks_per_request", result.kicksPerRequest(), 4)
                .field("kicks_suppressed", t.kicksSuppressed);
        if (ioSubmitCalls < 0) {
            j.nullField("io_submit_calls").nullField("io_submit_per_request");
        } else {
            j.field("io_submit_calls", ioSubmitCalls).field("io_submit_per_request", ioSubmitPerRequest(), 4);
        }
        j.field("cpu_us_per_request", cpuNanosPerRequest() / 1e3, 3);
        j.object("cpu_s").field("iothreads", cpuIoThreads / 1e9, 3).field("guest", cpuGuest / 1e9, 3)
                .field("control", cpuControl / 1e9, 3).end();
        if (w.verify()) {
            j.object("verify").field("sectors_checked", t.verifiedSectors).field("blocks_read_back", t.readBackBlocks)
                    .field("failures", t.verifyFailures).field("unwritten_reads", t.unverifiedReads).end();
        }
        if (!meters.isEmpty()) {
            j.object("meters");
            meters.forEach((k, v) -> {
                if (v instanceof Double || v instanceof Float) {
                    j.field(k, v.doubleValue(), 6);
                } else {
                    j.field(k, v.longValue());
                }
            });
            j.end();
        }
        j.field("ok", result.ok()).field("error", result.error());
        return j.end().toString();
    }
}
