package io.vblk.aio.metrics;

import java.util.List;

/**
 * Any thread (immutable).
 *
 * <p>The catalogue of vblk's meters: every meter the project exports is named here once, with its
 * kind, unit, description and tag keys. The components keep plain fields and getters; the
 * Micrometer binding in the tools module ({@code io.vblk.tools.metrics}) registers one meter per
 * constant and live object, reading those getters when scraped. Nothing here depends on
 * Micrometer, so every layer can name a meter.
 *
 * <p>Names are Micrometer's dotted names; {@link #prometheusName()} is what the Prometheus text
 * format shows (snake case, the unit appended, {@code _total} for counters; histograms add
 * {@code _bucket}, {@code _count} and {@code _sum}).
 */
public enum Meter {
    // ------------------------------------------------------------ requests (virtio-blk queues)
    REQUESTS("vblk.requests", Kind.COUNTER, null,
            "Guest requests completed (status written, used element pushed), by operation",
            Tag.EXPORT, Tag.QUEUE, Tag.IOTHREAD, Tag.OP),
    REQUEST_BYTES("vblk.request", Kind.COUNTER, Unit.BYTES,
            "Bytes moved for guest requests that completed OK, by operation (read, write)",
            Tag.EXPORT, Tag.QUEUE, Tag.IOTHREAD, Tag.OP),
    REQUEST_ERRORS("vblk.request.errors", Kind.COUNTER, null,
            "Guest requests answered with an error status (ioerr, unsupp), by status and cause",
            Tag.EXPORT, Tag.QUEUE, Tag.IOTHREAD, Tag.STATUS, Tag.CAUSE),
    REQUEST_LATENCY("vblk.request.latency", Kind.HISTOGRAM, Unit.SECONDS,
            "Guest-visible request latency, from pop off the avail ring to the used-ring push, by operation",
            Tag.EXPORT, Tag.QUEUE, Tag.IOTHREAD, Tag.OP),
    QUEUE_IN_FLIGHT("vblk.queue.in.flight", Kind.GAUGE, null,
            "Requests popped from the queue and not yet completed",
            Tag.EXPORT, Tag.QUEUE, Tag.IOTHREAD),
    QUEUE_DEPTH_AT_POP("vblk.queue.depth.at.pop", Kind.HISTOGRAM, null,
            "Available chains the queue found when a processing pass began popping",
            Tag.EXPORT, Tag.QUEUE, Tag.IOTHREAD),
    REQUESTS_MERGED("vblk.requests.merged", Kind.COUNTER, null,
            "Requests merged into a neighbour's driver request",
            Tag.EXPORT, Tag.QUEUE, Tag.IOTHREAD),
    DRIVER_SUBMITS("vblk.driver.submits", Kind.COUNTER, null,
            "Driver requests submitted by the queue (a merged group counts once)",
            Tag.EXPORT, Tag.QUEUE, Tag.IOTHREAD),
    QUEUE_KICKS("vblk.queue.kicks", Kind.COUNTER, null,
            "Kick handler runs (guest notifications and drained-section re-checks)",
            Tag.EXPORT, Tag.QUEUE, Tag.IOTHREAD),
    QUEUE_PASSES("vblk.queue.passes", Kind.COUNTER, null,
            "Processing passes over the avail ring",
            Tag.EXPORT, Tag.QUEUE, Tag.IOTHREAD),
    DEVICE_NEEDS_RESET("vblk.device.needs.reset", Kind.GAUGE, null,
            "1 while the device is in NEEDS_RESET after a guest broke the virtqueue rules, else 0",
            Tag.EXPORT),
    DEVICE_IO_ERRORS("vblk.device.io.errors", Kind.COUNTER, null,
            "Requests the driver failed, by the werror/rerror action taken (BLOCK_IO_ERROR events): ignore, report, stop",
            Tag.EXPORT, Tag.ACTION),
    DEVICE_IO_STOPPED("vblk.device.io.stopped", Kind.GAUGE, null,
            "1 while an I/O error stopped the device (werror/rerror=stop) until it is resumed, else 0",
            Tag.EXPORT),

    // ------------------------------------------------------------ block driver channels
    CHANNEL_IN_FLIGHT("vblk.channel.in.flight", Kind.GAUGE, null,
            "Requests submitted to a driver channel and not yet completed",
            Tag.EXPORT, Tag.IOTHREAD, Tag.DRIVER),
    CHANNEL_COMPLETED("vblk.channel.completed", Kind.COUNTER, null,
            "Requests completed by a driver channel (refused ones included); restarts when the channel is reopened",
            Tag.EXPORT, Tag.IOTHREAD, Tag.DRIVER),

    // ------------------------------------------------------------ guest notifications (irqfd)
    NOTIFY_REQUESTED("vblk.notify.requested", Kind.COUNTER, null,
            "Guest notifications asked for by completions",
            Tag.EXPORT, Tag.QUEUE, Tag.IOTHREAD),
    NOTIFY_COALESCED("vblk.notify.coalesced", Kind.COUNTER, null,
            "Notification requests folded into a send already queued in the same defer-call section",
            Tag.EXPORT, Tag.QUEUE, Tag.IOTHREAD),
    NOTIFY_SUPPRESSED("vblk.notify.suppressed", Kind.COUNTER, null,
            "Sends the guest's EVENT_IDX / NO_INTERRUPT flags said it did not want",
            Tag.EXPORT, Tag.QUEUE, Tag.IOTHREAD),
    NOTIFY_EVENTFD_WRITES("vblk.notify.eventfd.writes", Kind.COUNTER, null,
            "Call eventfd writes (guest interrupts sent)",
            Tag.EXPORT, Tag.QUEUE, Tag.IOTHREAD),
    NOTIFY_WRITE_ERRORS("vblk.notify.write.errors", Kind.COUNTER, null,
            "Call eventfd writes that failed",
            Tag.EXPORT, Tag.QUEUE, Tag.IOTHREAD),
    NOTIFY_NO_FD("vblk.notify.no.fd", Kind.COUNTER, null,
            "Sends dropped because the queue has no call eventfd (a polling peer)",
            Tag.EXPORT, Tag.QUEUE, Tag.IOTHREAD),

    // ------------------------------------------------------------ Linux native AIO engine
    AIO_IO_SUBMIT_CALLS("vblk.aio.io.submit.calls", Kind.COUNTER, null,
            "io_submit system calls",
            Tag.IOTHREAD),
    AIO_SUBMIT_BATCH("vblk.aio.submit.batch", Kind.HISTOGRAM, null,
            "Requests offered to one io_submit call",
            Tag.IOTHREAD),
    AIO_SUBMITTED("vblk.aio.submitted", Kind.COUNTER, null,
            "Requests the kernel accepted through io_submit",
            Tag.IOTHREAD),
    AIO_COMPLETED("vblk.aio.completed", Kind.COUNTER, null,
            "Requests completed by the engine (including failed submissions)",
            Tag.IOTHREAD),
    AIO_SUBMIT_ERRORS("vblk.aio.submit.errors", Kind.COUNTER, null,
            "io_submit calls that failed with an error other than EAGAIN (their first request failed)",
            Tag.IOTHREAD),
    AIO_EAGAIN("vblk.aio.eagain", Kind.COUNTER, null,
            "io_submit calls refused with EAGAIN: the queue blocks until a completion frees room",
            Tag.IOTHREAD),
    AIO_IN_FLIGHT("vblk.aio.in.flight", Kind.GAUGE, null,
            "Requests in the kernel",
            Tag.IOTHREAD),
    AIO_QUEUED("vblk.aio.queued", Kind.GAUGE, null,
            "Requests queued on the engine and not yet submitted",
            Tag.IOTHREAD),
    AIO_RING_EVENTS("vblk.aio.ring.events", Kind.COUNTER, null,
            "Completions read straight from the kernel's completion ring",
            Tag.IOTHREAD),
    AIO_GETEVENTS_CALLS("vblk.aio.getevents.calls", Kind.COUNTER, null,
            "io_getevents calls (the fallback when the completion ring is not recognised)",
            Tag.IOTHREAD),
    AIO_COMPLETION_PASSES("vblk.aio.completion.passes", Kind.COUNTER, null,
            "Completion processing passes",
            Tag.IOTHREAD),
    AIO_COMPLETION_BH_RUNS("vblk.aio.completion.bh.runs", Kind.COUNTER, null,
            "Runs of the completion bottom half (nested-loop rescue, seed-000 resume, blocked retry)",
            Tag.IOTHREAD),

    // ------------------------------------------------------------ io_uring engine
    URING_ENTER_CALLS("vblk.uring.enter.calls", Kind.COUNTER, null,
            "io_uring_enter system calls (submissions and resubmissions)",
            Tag.IOTHREAD),
    URING_SUBMIT_BATCH("vblk.uring.submit.batch", Kind.HISTOGRAM, null,
            "Requests offered to one io_uring submit",
            Tag.IOTHREAD),
    URING_SUBMITTED("vblk.uring.submitted", Kind.COUNTER, null,
            "Requests the io_uring engine took",
            Tag.IOTHREAD),
    URING_COMPLETED("vblk.uring.completed", Kind.COUNTER, null,
            "Requests completed by the io_uring engine",
            Tag.IOTHREAD),
    URING_EAGAIN("vblk.uring.eagain", Kind.COUNTER, null,
            "io_uring submits that took nothing (enter said EAGAIN/EBUSY, or the ring was full): the queue blocks",
            Tag.IOTHREAD),
    URING_IN_FLIGHT("vblk.uring.in.flight", Kind.GAUGE, null,
            "Requests in the io_uring engine's ring",
            Tag.IOTHREAD),
    URING_RESUBMITS("vblk.uring.resubmits", Kind.COUNTER, null,
            "Requests the ring resubmitted: a short read's remainder, or a completion with EAGAIN",
            Tag.IOTHREAD, Tag.CAUSE),

    // ------------------------------------------------------------ hazard guards (seeds)
    GUARD_SUBMIT_CAP_HITS("vblk.guard.submit.depth.cap.hits", Kind.COUNTER, null,
            "Submits stopped by the submit-depth cap and resumed from the completion bottom half (seed 000)",
            Tag.IOTHREAD, Tag.ENGINE),
    GUARD_SUBMIT_MAX_DEPTH("vblk.guard.submit.depth.max", Kind.GAUGE, null,
            "Deepest submit nesting seen (seed 000)",
            Tag.IOTHREAD, Tag.ENGINE),
    GUARD_WAKES_BEFORE_SLEEP("vblk.guard.wakes.before.sleep", Kind.COUNTER, null,
            "Wake-ups that arrived before the sleeper armed and ended its next sleep at once (seed 001)",
            Tag.IOTHREAD, Tag.SLEEPER),
    GUARD_FOREIGN_COMPLETIONS("vblk.guard.foreign.completions", Kind.COUNTER, null,
            "Completion attempts from a foreign thread handed over to the home context (seed 002)",
            Tag.IOTHREAD),
    GUARD_DRAINED_SECTIONS("vblk.guard.drained.sections", Kind.COUNTER, null,
            "Guest kick handlers paused by drained sections of a block node (once per device queue and section) (seed 003)",
            Tag.IOTHREAD),
    GUARD_DRAIN_RECHECKS("vblk.guard.drain.rechecks", Kind.COUNTER, null,
            "Paused guest kick handlers re-run at the end of their drained section, so no kick is lost (seed 003)",
            Tag.IOTHREAD),
    GUARD_DRAINED_REQUESTS_STARTED("vblk.guard.drained.requests.started", Kind.COUNTER, null,
            "Guest requests a device queue took while its block node was drained: each one is seed 003's leak; stays 0 with the guard on",
            Tag.EXPORT, Tag.QUEUE, Tag.IOTHREAD),
    GUARD_NESTED_WAITS("vblk.guard.nested.waits", Kind.COUNTER, null,
            "Nested polls of the context (AioContext.waitWhile, QEMU's AIO_WAIT_WHILE) (seed 004)",
            Tag.IOTHREAD),
    GUARD_NESTED_WAIT_TIMEOUTS("vblk.guard.nested.wait.timeouts", Kind.COUNTER, null,
            "Nested polls that reached their bound with the condition still true: the wait needed a handler the nested poll does not dispatch (seed 004)",
            Tag.IOTHREAD),

    // ------------------------------------------------------------ event loops
    LOOP_ITERATIONS("vblk.loop.iterations", Kind.COUNTER, null,
            "Event loop iterations",
            Tag.IOTHREAD),
    LOOP_BLOCKED("vblk.loop.blocked", Kind.COUNTER, Unit.SECONDS,
            "Time the event loop spent blocked in epoll_wait",
            Tag.IOTHREAD),
    LOOP_SPIN("vblk.loop.spin", Kind.COUNTER, Unit.SECONDS,
            "Time the event loop spent busy-polling its poll handlers",
            Tag.IOTHREAD),
    LOOP_POLL_HITS("vblk.loop.poll.hits", Kind.COUNTER, null,
            "Busy-poll rounds that found work without a system call",
            Tag.IOTHREAD),
    LOOP_POLL_MISSES("vblk.loop.poll.misses", Kind.COUNTER, null,
            "Busy-poll windows that spun to their end without work, after which the loop blocked",
            Tag.IOTHREAD),
    LOOP_POLL_WINDOW("vblk.loop.poll.window", Kind.GAUGE, Unit.SECONDS,
            "Current adaptive busy-poll window",
            Tag.IOTHREAD),
    LOOP_BH_RUNS("vblk.loop.bh.runs", Kind.COUNTER, null,
            "Bottom halves run",
            Tag.IOTHREAD),
    LOOP_TIMER_RUNS("vblk.loop.timer.runs", Kind.COUNTER, null,
            "Timers fired",
            Tag.IOTHREAD),

    // ------------------------------------------------------------ vhost-user
    VHOST_CONNECTIONS("vblk.vhost.connections", Kind.GAUGE, null,
            "Open vhost-user connections",
            Tag.EXPORT),
    VHOST_CONNECTIONS_ACCEPTED("vblk.vhost.connections.accepted", Kind.COUNTER, null,
            "vhost-user connections accepted",
            Tag.EXPORT),
    VHOST_MESSAGES("vblk.vhost.messages", Kind.COUNTER, null,
            "vhost-user messages handled, by request type",
            Tag.EXPORT, Tag.TYPE),
    VHOST_PROTOCOL_ERRORS("vblk.vhost.protocol.errors", Kind.COUNTER, null,
            "Malformed or out-of-order vhost-user messages (each closes its connection)",
            Tag.EXPORT),

    // ------------------------------------------------------------ block jobs
    JOB_PROGRESS("vblk.job.progress", Kind.GAUGE, Unit.BYTES,
            "Work a block job has done (QMP current-progress)", Tag.JOB, Tag.TYPE),
    JOB_TOTAL("vblk.job.total", Kind.GAUGE, Unit.BYTES,
            "Work a block job has done plus the work it knows is left (QMP total-progress)", Tag.JOB, Tag.TYPE),
    JOB_COPIED("vblk.job.copied", Kind.COUNTER, Unit.BYTES,
            "Bytes a block job wrote to its target", Tag.JOB, Tag.TYPE),

    // ------------------------------------------------------------ the daemon's footprint (sampled)
    PROCESS_RESIDENT("vblk.process.resident", Kind.GAUGE, Unit.BYTES,
            "Resident set size of the daemon (VmRSS), at the footprint sampler's last reading", Tag.SLEEPER),
    PROCESS_OPEN_FDS("vblk.process.open.fds", Kind.GAUGE, null,
            "Open file descriptors of the daemon, at the footprint sampler's last reading", Tag.SLEEPER),
    PROCESS_THREADS("vblk.process.threads", Kind.GAUGE, null,
            "Threads of the daemon, at the footprint sampler's last reading", Tag.SLEEPER);

    /** How a meter is read. */
    public enum Kind {
        /** Monotonic count read from a getter (Micrometer FunctionCounter). */
        COUNTER,
        /** A value that goes up and down, read from a getter (Micrometer Gauge). */
        GAUGE,
        /** A {@link LatencyHistogram}, exported as a Prometheus histogram. */
        HISTOGRAM
    }

    /** Base units (Prometheus base units: seconds, bytes). */
    public static final class Unit {
        public static final String SECONDS = "seconds";
        public static final String BYTES = "bytes";

        private Unit() {
        }
    }

    /** Tag keys. */
    public static final class Tag {
        /** A block job's id (QMP job-id). */
        public static final String JOB = "job";
        /** The export (device) name, as in {@code --export ...,id=NAME}. */
        public static final String EXPORT = "export";
        /** The queue index within the export. */
        public static final String QUEUE = "queue";
        /** The event loop (IoThread or main loop) name. */
        public static final String IOTHREAD = "iothread";
        /** Request operation: read, write, flush, discard, write_zeroes, get_id, unsupported. */
        public static final String OP = "op";
        /** Error status: ioerr, unsupp. */
        public static final String STATUS = "status";
        /**
         * Why a request failed: request (refused at parse), driver (its result), type (unknown type);
         * why io_uring resubmitted one: short_read, eagain.
         */
        public static final String CAUSE = "cause";
        /** What the device did about a failed request (werror / rerror): ignore, report, stop. */
        public static final String ACTION = "action";
        /** vhost-user request type. */
        public static final String TYPE = "type";
        /** Name of a sleeper (a periodic task with early wake). */
        public static final String SLEEPER = "sleeper";
        /** Block driver kind: file, null, fault. */
        public static final String DRIVER = "driver";
        /** A submission queue with a depth guard: linux-aio, io_uring, null-sync. */
        public static final String ENGINE = "engine";

        private Tag() {
        }
    }

    private final String meterName;
    private final Kind kind;
    private final String baseUnit;
    private final String description;
    private final List<String> tagKeys;

    Meter(String meterName, Kind kind, String baseUnit, String description, String... tagKeys) {
        this.meterName = meterName;
        this.kind = kind;
        this.baseUnit = baseUnit;
        this.description = description;
        this.tagKeys = List.of(tagKeys);
    }

    /** Micrometer's dotted name. */
    public String meterName() {
        return meterName;
    }

    public Kind kind() {
        return kind;
    }

    /** {@link Unit#SECONDS}, {@link Unit#BYTES} or null (a plain count). */
    public String baseUnit() {
        return baseUnit;
    }

    public String description() {
        return description;
    }

    /** The tag keys every instance of this meter carries. */
    public List<String> tagKeys() {
        return tagKeys;
    }

    /**
     * The metric family name in the Prometheus text format: dots to underscores, the unit
     * appended unless the name ends with it, {@code _total} appended for counters. Histogram
     * series add {@code _bucket}, {@code _count} and {@code _sum} to it.
     */
    public String prometheusName() {
        String n = meterName.replace('.', '_');
        if (baseUnit != null && !n.endsWith("_" + baseUnit)) {
            n = n + "_" + baseUnit;
        }
        return kind == Kind.COUNTER ? n + "_total" : n;
    }

    /** The constant whose {@link #prometheusName()} is {@code name}, or null. */
    public static Meter byPrometheusName(String name) {
        for (Meter m : values()) {
            if (m.prometheusName().equals(name)) {
                return m;
            }
        }
        return null;
    }
}
