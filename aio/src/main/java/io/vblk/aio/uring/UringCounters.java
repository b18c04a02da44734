package io.vblk.aio.uring;

/**
 * Home thread: the owning IoThread (its {@link IoUring} increments the fields; read them there or
 * hand a snapshot over).
 *
 * <p>What one ring did: the figures an engine's metrics export. Plain fields the ring already holds
 * on its hot path; nothing is computed per read.
 */
public final class UringCounters {
    long enterCalls;
    long sqesSubmitted;
    long cqesReaped;
    long completed;
    long enterEagains;
    long cqeEagains;
    long shortReadResubmits;
    long submitErrors;
    long fixedFileSqes;

    UringCounters() {
    }

    /** io_uring_enter calls. */
    public long enterCalls() {
        return enterCalls;
    }

    /** SQEs the kernel consumed (resubmissions included). */
    public long sqesSubmitted() {
        return sqesSubmitted;
    }

    /** CQEs read from the CQ ring. */
    public long cqesReaped() {
        return cqesReaped;
    }

    /** Completion callbacks run: accepted requests finished. */
    public long completedRequests() {
        return completed;
    }

    /** io_uring_enter answers of -EAGAIN or -EBUSY (nothing consumed; retried later). */
    public long enterEagains() {
        return enterEagains;
    }

    /** CQEs with -EAGAIN or -EINTR that were resubmitted. */
    public long cqeEagains() {
        return cqeEagains;
    }

    /** Short reads resubmitted for their remainder. */
    public long shortReadResubmits() {
        return shortReadResubmits;
    }

    /** io_uring_enter failures other than EAGAIN/EBUSY (their SQEs completed with the error). */
    public long submitErrors() {
        return submitErrors;
    }

    /** SQEs that named a registered file (IOSQE_FIXED_FILE) instead of an fd. */
    public long fixedFileSqes() {
        return fixedFileSqes;
    }

    @Override
    public String toString() {
        return "enters=" + enterCalls + " sqes=" + sqesSubmitted + " cqes=" + cqesReaped + " completed=" + completed
                + " enterEagain=" + enterEagains + " cqeEagain=" + cqeEagains + " shortReads=" + shortReadResubmits
                + " submitErrors=" + submitErrors + " fixedFile=" + fixedFileSqes;
    }
}
