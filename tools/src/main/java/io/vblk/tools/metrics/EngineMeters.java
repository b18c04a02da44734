package io.vblk.tools.metrics;

import io.vblk.aio.engine.SubmissionQueue;
import io.vblk.aio.linuxaio.LinuxAio;
import io.vblk.aio.metrics.Meter;
import io.vblk.aio.uring.UringBackend;
import io.vblk.aio.uring.UringCounters;

/**
 * Any thread: called by {@link VblkMetrics} under its lock; nothing here runs on the request path.
 *
 * <p>The meters of one I/O engine, registered once per engine (however many channels share it):
 * its submission queue's counters, the backend's own (ring reads, io_getevents fallbacks,
 * io_uring_enter calls, resubmissions) and the seed-000 submit-depth guard tagged with the engine.
 */
final class EngineMeters {
    private EngineMeters() {
    }

    /** A Linux AIO engine: the queue's counters and the backend's ring/getevents counters. */
    static Binding linuxAio(VblkMetrics m, SubmissionQueue aio, LinuxAio backend, String t) {
        Binding b = m.open("linux-aio meters " + t);
        m.counter(b, Meter.AIO_IO_SUBMIT_CALLS, aio, SubmissionQueue::submitCalls, t);
        m.histogram(b, Meter.AIO_SUBMIT_BATCH, aio.batchSizes(), t);
        m.counter(b, Meter.AIO_SUBMITTED, aio, SubmissionQueue::submittedRequests, t);
        m.counter(b, Meter.AIO_COMPLETED, aio, SubmissionQueue::completedRequests, t);
        m.counter(b, Meter.AIO_SUBMIT_ERRORS, aio, SubmissionQueue::submitErrors, t);
        m.counter(b, Meter.AIO_EAGAIN, aio, SubmissionQueue::eagainCount, t);
        m.gauge(b, Meter.AIO_IN_FLIGHT, aio, SubmissionQueue::inFlight, t);
        m.gauge(b, Meter.AIO_QUEUED, aio, SubmissionQueue::queued, t);
        m.counter(b, Meter.AIO_RING_EVENTS, backend, LinuxAio::ringEvents, t);
        m.counter(b, Meter.AIO_GETEVENTS_CALLS, backend, LinuxAio::geteventsCalls, t);
        m.counter(b, Meter.AIO_COMPLETION_PASSES, aio, SubmissionQueue::completionPasses, t);
        m.counter(b, Meter.AIO_COMPLETION_BH_RUNS, aio, SubmissionQueue::completionBhRuns, t);
        m.counter(b, Meter.GUARD_SUBMIT_CAP_HITS, aio, SubmissionQueue::submitCapHits, t, "linux-aio");
        m.gauge(b, Meter.GUARD_SUBMIT_MAX_DEPTH, aio, SubmissionQueue::maxSubmitDepth, t, "linux-aio");
        return b;
    }

    /** An io_uring engine: the queue's counters and the ring's enter/resubmit counters. */
    static Binding ioUring(VblkMetrics m, SubmissionQueue engine, UringBackend backend, String t) {
        Binding b = m.open("io_uring meters " + t);
        UringCounters c = backend.counters();
        m.counter(b, Meter.URING_ENTER_CALLS, c, UringCounters::enterCalls, t);
        m.histogram(b, Meter.URING_SUBMIT_BATCH, engine.batchSizes(), t);
        m.counter(b, Meter.URING_SUBMITTED, engine, SubmissionQueue::submittedRequests, t);
        m.counter(b, Meter.URING_COMPLETED, engine, SubmissionQueue::completedRequests, t);
        m.counter(b, Meter.URING_EAGAIN, engine, SubmissionQueue::eagainCount, t);
        m.gauge(b, Meter.URING_IN_FLIGHT, engine, SubmissionQueue::inFlight, t);
        m.counter(b, Meter.URING_RESUBMITS, c, UringCounters::shortReadResubmits, t, "short_read");
        m.counter(b, Meter.URING_RESUBMITS, c, UringCounters::cqeEagains, t, "eagain");
        m.counter(b, Meter.GUARD_SUBMIT_CAP_HITS, engine, SubmissionQueue::submitCapHits, t, "io_uring");
        m.gauge(b, Meter.GUARD_SUBMIT_MAX_DEPTH, engine, SubmissionQueue::maxSubmitDepth, t, "io_uring");
        return b;
    }
}
