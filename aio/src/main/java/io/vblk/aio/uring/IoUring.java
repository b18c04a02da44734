package io.vblk.aio.uring;

import io.vblk.aio.AioContext;
import io.vblk.aio.FdHandler;
import io.vblk.aio.PollHandler;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.EventFds;
import io.vblk.aio.sys.FileIo;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;

/**
 * Home thread: the owning IoThread. No locking. Every entry point asserts it (seed 002: completions
 * processed from two threads make counters go backwards and requests complete twice).
 *
 * <p>One io_uring instance of one {@link AioContext}, driven by raw system calls: the SQ and CQ
 * rings are mmapped {@link MemorySegment}s ({@link UringQueues}), SQEs are written in place, one
 * {@code io_uring_enter} pushes every SQE prepared since the last one, and completions are read
 * straight from the CQ ring in user space. Completions posted while the loop waits wake it through
 * an eventfd the kernel signals (IORING_REGISTER_EVENTFD) or through the ring fd itself
 * ({@link Wake}); either is an fd handler on the context that is <em>not</em> external, so
 * completions flow while the context is drained. An optional poll handler (a read of
 * the CQ tail) serves the context's adaptive busy polling.
 *
 * <p>How an engine seam adapts it (QEMU's {@code block/io_uring.c} is the same cycle):
 * <pre>
 *   accept:   n = ring.prepareList(pendingHead, batch, reader)  // n requests now belong to the ring
 *                                                                // (remove them from the pending list)
 *   submit:   r = ring.submit()           // SQEs the kernel consumed, or -EAGAIN/-EBUSY: the SQEs
 *                                          // stay in the ring; call submit() again after completions
 *   complete: ring.reap()                 // calls Completion.uringCompleted(request, result) once per
 *                                          // accepted request; from onReady (eventfd / poll) and
 *                                          // after submit(), since page-cache I/O completes inline
 * </pre>
 * A request is accepted when a {@code prepare*} call returns true (false: no free SQE or slot; call
 * {@link #submit()} or wait for completions). From then on it completes exactly once through the
 * {@link Completion}, whatever happens: a failed submission completes it with the error (STYLE
 * rule 11). Results: READV/WRITEV bytes transferred (a read is complete, or short only at end of
 * file; a write may be short: the caller maps that to -ENOSPC as QEMU does), FSYNC/FALLOCATE/NOP
 * 0, or -errno.
 *
 * <p>What the ring does on its own, as QEMU's {@code luring_process_completions}: a CQE with
 * -EAGAIN or -EINTR is resubmitted unchanged; a read that returned fewer bytes than asked (but
 * more than 0) is resubmitted for the remainder ({@code luring_resubmit_short_read}), with the
 * iovec array rewritten into a per-slot area the ring owns. Resubmissions go down at the end of
 * the {@link #reap()} that found them.
 *
 * <p>Nothing is allocated per request: {@code user_data} is an index into a preallocated slot
 * table that holds the request and its operation fields; in-flight requests are bounded by the CQ
 * size, so the CQ can never overflow. The re-entry bound of seed 000 (a completion callback that
 * submits, inside a submit) belongs to the submission queue that drives this ring, as for Linux
 * AIO; this class holds no cursor across a callback except the CQ head, which it publishes before
 * each callback, so a nested {@link #reap()} (a callback running the event loop) continues at the
 * next CQE.
 */
@SuppressWarnings("restricted") // the kernel's ring memory; native access is enabled for vblk
public final class IoUring {
    /** SQ entries unless told otherwise (QEMU's MAX_ENTRIES). */
    public static final int DEFAULT_ENTRIES = 128;
    /** io_uring_setup's limit on SQ entries (IORING_MAX_ENTRIES, io_uring/io_uring.c). */
    public static final int MAX_ENTRIES = 32768;
    /** Asked of io_uring_setup; the ring falls back to CLAMP alone on a kernel older than 6.0. */
    static final int SETUP_FLAGS = UringParamsLayout.IORING_SETUP_CLAMP | UringParamsLayout.IORING_SETUP_SUBMIT_ALL
            | UringParamsLayout.IORING_SETUP_SINGLE_ISSUER;

    /** int accessor with (segment, offset) coordinates for acquire/release on the rings. */
    private static final VarHandle INT = ValueLayout.JAVA_INT.varHandle();

    /** How completions posted while the loop waits wake it. */
    public enum Wake {
        /**
         * An eventfd registered with IORING_REGISTER_EVENTFD, read by its handler: the kernel signals it for
         * every batch of CQEs, also those completed inside {@link #submit()}, so the loop wakes once more.
         */
        EVENTFD,
        /**
         * The ring fd itself in the loop's epoll set, as QEMU does ({@code luring_attach_aio_context}):
         * level-triggered, it is readable while the CQ holds entries (io_uring_poll in
         * io_uring/io_uring.c), so completions reaped right after submit cost no wake-up and no
         * read system call.
         */
        RING_FD
    }

    /** Hears that an accepted request finished. Home thread; may run inside {@link #reap()} only. */
    @FunctionalInterface
    public interface Completion {
        /**
         * @param request what was passed to the {@code prepare*} call; its slot is free again
         * @param result  bytes (READV/WRITEV), 0 (FSYNC/FALLOCATE/NOP) or -errno
         */
        void uringCompleted(Object request, long result);
    }

    /**
     * How {@link #prepareList} and {@link #prepareArray} read the caller's request type; the seam's
     * adapter implements it once (a stateless singleton, so nothing is allocated per call).
     */
    public interface RequestReader<R> {
        /** The request after {@code req} in the caller's pending list, or null. */
        R next(R req);

        /** Calls the one {@code prepare*} method of {@code ring} that fits {@code req}; returns its answer. */
        boolean prepare(IoUring ring, R req);
    }

    private final AioContext ctx;
    private final UringQueues q;
    private final Completion completion;
    private final Runnable onReady;
    private final Wake wake;
    /** The eventfd the kernel signals ({@link Wake#EVENTFD}), else -1. */
    private final int efd;
    private final FdHandler efdHandler;
    private final PollHandler pollHandler;
    private final Arena arena;
    private final UringSlots slots;

    private int sqTail; // next SQ position to fill (published to the kernel in submit())
    private int sqHead; // the kernel's SQ head as last read: SQEs before it are consumed
    private int cqHead; // next CQE to read; published to the kernel before each callback
    private int cqTailSeen;
    private boolean resubmitted;
    private boolean closed;
    private final UringFiles files = new UringFiles();
    private final UringBuffers buffers;
    private final UringCounters counters = new UringCounters();

    private IoUring(AioContext ctx, int entries, Completion completion, Runnable onReady, boolean poll,
                    Wake wake, int extraSetupFlags) {
        this.ctx = ctx;
        this.completion = completion;
        this.onReady = onReady != null ? onReady : this::reap;
        this.wake = wake;
        this.q = UringQueues.create(entries, SETUP_FLAGS | extraSetupFlags);
        this.buffers = new UringBuffers(this, q.fd);
        int fd = -1;
        if (wake == Wake.EVENTFD) {
            try {
                fd = q.registerEventfd();
            } catch (IllegalStateException e) {
                q.close();
                throw e;
            }
        }
        this.arena = Arena.ofShared();
        this.efd = fd;
        this.slots = new UringSlots(q.cqEntries, arena); // one per CQE: in flight never exceeds the CQ
        // Not external: completions must keep flowing while the context is drained.
        this.efdHandler = wake == Wake.EVENTFD
                ? ctx.addFdHandler("io_uring", efd, this::eventfdReady)
                : ctx.addFdHandler("io_uring", q.fd, this::ringFdReady);
        this.pollHandler = poll ? ctx.addPollHandler("io_uring.poll", this::pollReady) : null;
    }

    /** A ring of {@code entries} SQ entries whose completions the eventfd handler reaps. Home thread. */
    public static IoUring open(AioContext ctx, int entries, Completion completion) {
        return open(ctx, entries, completion, null, false);
    }

    /**
     * A ring of {@code entries} SQ entries (a power of two is used, at least this many; twice as
     * many may be in flight). {@code onReady} runs when completions are ready (eventfd, or the
     * poll handler when {@code pollHandler}); null means {@link #reap()}. An adapter passes its
     * "process completions" step, which opens a defer-call section, reaps and resubmits. Home
     * thread; throws IllegalStateException naming the errno if the kernel gives no io_uring.
     */
    public static IoUring open(AioContext ctx, int entries, Completion completion, Runnable onReady,
                               boolean pollHandler) {
        return open(ctx, entries, completion, onReady, pollHandler, Wake.EVENTFD);
    }

    /** As above, choosing how completions wake the loop ({@link Wake}). Home thread. */
    public static IoUring open(AioContext ctx, int entries, Completion completion, Runnable onReady,
                               boolean pollHandler, Wake wake) {
        ctx.assertHome();
        if (entries < 1 || entries > MAX_ENTRIES) {
            throw new IllegalArgumentException("io_uring entries must be 1.." + MAX_ENTRIES + ", got " + entries);
        }
        if (completion == null || wake == null) {
            throw new IllegalArgumentException("io_uring needs a completion callback and a wake-up mode");
        }
        return new IoUring(ctx, entries, completion, onReady, pollHandler, wake, 0);
    }

    /** As {@link #open(AioContext, int, Completion)} with more IORING_SETUP_* flags (tests). Home thread. */
    static IoUring openWithSetupFlags(AioContext ctx, int entries, Completion completion, int extraSetupFlags) {
        ctx.assertHome();
        return new IoUring(ctx, entries, completion, null, false, Wake.EVENTFD, extraSetupFlags);
    }

    // ---------------------------------------------------------------- preparing

    /** {@code preadv(fd, iov, iovcnt, offset)}; the iovec array must stay valid until completion. */
    public boolean prepareReadv(int fd, long iovAddr, int iovcnt, long offset, Object request) {
        return take(SqeLayout.IORING_OP_READV, fd, iovAddr, iovcnt, offset, 0, 0, request);
    }

    /** {@code preadv2(fd, iov, iovcnt, offset, rwFlags)} with {@code RWF_*} flags ({@link SqeLayout#RWF_NOWAIT}, ...). */
    public boolean prepareReadv(int fd, long iovAddr, int iovcnt, long offset, int rwFlags, Object request) {
        return take(SqeLayout.IORING_OP_READV, fd, iovAddr, iovcnt, offset, 0, rwFlags, request);
    }

    /** {@code pwritev(fd, iov, iovcnt, offset)}; the iovec array must stay valid until completion. */
    public boolean prepareWritev(int fd, long iovAddr, int iovcnt, long offset, Object request) {
        return take(SqeLayout.IORING_OP_WRITEV, fd, iovAddr, iovcnt, offset, 0, 0, request);
    }

    /** {@code pwritev2(fd, iov, iovcnt, offset, rwFlags)}: {@link SqeLayout#RWF_DSYNC} makes it a FUA write. */
    public boolean prepareWritev(int fd, long iovAddr, int iovcnt, long offset, int rwFlags, Object request) {
        return take(SqeLayout.IORING_OP_WRITEV, fd, iovAddr, iovcnt, offset, 0, rwFlags, request);
    }

    /** {@code fdatasync(fd)} when {@code datasync} (IORING_FSYNC_DATASYNC), else {@code fsync(fd)}. */
    public boolean prepareFsync(int fd, boolean datasync, Object request) {
        return take(SqeLayout.IORING_OP_FSYNC, fd, 0, 0, 0, 0, datasync ? SqeLayout.IORING_FSYNC_DATASYNC : 0,
                request);
    }

    /** {@code fallocate(fd, mode, offset, length)} (IORING_OP_FALLOCATE, 5.6+). */
    public boolean prepareFallocate(int fd, int mode, long offset, long length, Object request) {
        return take(SqeLayout.IORING_OP_FALLOCATE, fd, 0, 0, offset, length, mode, request);
    }

    /** A no-op that completes with 0: the cost of the ring itself. */
    public boolean prepareNop(Object request) {
        return take(SqeLayout.IORING_OP_NOP, -1, 0, 0, 0, 0, 0, request);
    }

    /**
     * Prepares up to {@code max} requests of the caller's list starting at {@code head}, in order,
     * stopping when the SQ or the slot table is full. Returns how many it took: exactly the first
     * that many of the list now belong to the ring.
     */
    public <R> int prepareList(R head, int max, RequestReader<R> reader) {
        int n = 0;
        for (R r = head; r != null && n < max && reader.prepare(this, r); r = reader.next(r)) {
            n++;
        }
        return n;
    }

    /** As {@link #prepareList} over {@code reqs[from .. from + count)}. */
    public <R> int prepareArray(R[] reqs, int from, int count, RequestReader<R> reader) {
        int n = 0;
        while (n < count && reader.prepare(this, reqs[from + n])) {
            n++;
        }
        return n;
    }

    // Accepts a request (false: no room); len is FALLOCATE's length or a fixed op's buffer index.
    boolean take(int op, int fd, long addr, int cnt, long off, long len, int flags, Object request) {
        ctx.assertHome();
        if (closed) {
            throw new IllegalStateException("io_uring of " + ctx.name() + " is closed");
        }
        if (request == null) {
            throw new IllegalArgumentException("io_uring request is null");
        }
        if (slots.resubmitWaiting() && !flushResubmits()) {
            return false; // resubmissions first, so they are not starved by new work
        }
        if (!slots.hasFree() || sqSpace() == 0) {
            return false;
        }
        int slot = slots.take(request, op, fd, addr, cnt, off, len, flags);
        writeSqe(slot);
        return true;
    }

    private int sqSpace() {
        return q.sqEntries - (sqTail - sqHead);
    }

    /** Writes the SQE of {@code slot} at the SQ tail; the caller checked there is room. */
    private void writeSqe(int slot) {
        long at = (long) (sqTail & q.sqMask) * SqeLayout.BYTES;
        int fd = slots.fd(slot);
        int sqeFlags = 0;
        int index = files.indexOf(fd);
        if (index >= 0) {
            fd = index;
            sqeFlags = SqeLayout.IOSQE_FIXED_FILE;
            counters.fixedFileSqes++;
        }
        slots.writeSqe(slot, q.sqes, at, fd, sqeFlags);
        sqTail++;
    }

    // ---------------------------------------------------------------- registered files and buffers

    /**
     * Registers {@code fds} (IORING_REGISTER_FILES): requests on them name the file by index
     * (IOSQE_FIXED_FILE), sparing the per-request file lookup; callers keep passing fd numbers. Open
     * until {@link #unregisterFiles()}; nothing in flight. 0 or -errno (-EBUSY: already). Home thread.
     */
    public int registerFiles(int... fds) {
        ctx.assertHome();
        return slots.inUse() > 0 ? -Errno.EBUSY : files.register(q.fd, fds);
    }

    /** Drops the registered files (IORING_UNREGISTER_FILES). Nothing may be in flight. 0 or -errno. Home thread. */
    public int unregisterFiles() {
        ctx.assertHome();
        return slots.inUse() > 0 ? -Errno.EBUSY : files.unregister(q.fd);
    }

    /** Registered buffers (IORING_REGISTER_BUFFERS) and the fixed reads and writes into them. */
    public UringBuffers buffers() {
        return buffers;
    }

    // ---------------------------------------------------------------- submitting

    /**
     * Pushes every SQE prepared (and every resubmission waiting) in one {@code io_uring_enter}.
     * Returns the number the kernel consumed (0: nothing), -EAGAIN or -EBUSY when it took none (the
     * SQEs stay: call again after a completion), or another -errno, with which the SQEs it did not
     * consume complete at the next {@link #reap()}. Page-cache I/O and NOPs complete inside: reap after.
     */
    public int submit() {
        ctx.assertHome();
        if (slots.resubmitWaiting()) {
            flushResubmits();
        }
        int toSubmit = sqTail - sqHead;
        if (toSubmit == 0) {
            return 0;
        }
        // Pairs with smp_load_acquire(&rings->sq.tail) in io_sqring_entries() (io_uring/io_uring.h):
        // the SQEs written before this store are visible to the kernel once it sees the new tail.
        INT.setRelease(q.sq, q.sqTail, sqTail);
        int r = UringSyscalls.enter(q.fd, toSubmit, 0, 0);
        counters.enterCalls++;
        // Pairs with smp_store_release(&rings->sq.head) in io_commit_sqring() (io_uring/io_uring.c):
        // the kernel has read the SQEs before the head it publishes, so those may be rewritten.
        sqHead = (int) INT.getAcquire(q.sq, q.sqHead);
        if (r >= 0) {
            counters.sqesSubmitted += r;
            if (sqTail == sqHead) {
                resubmitted = false;
            }
            return r;
        }
        if (r == -Errno.EAGAIN || r == -Errno.EBUSY) {
            counters.enterEagains++;
            return r;
        }
        failUnconsumed(r);
        return r;
    }

    /**
     * The ring refused the SQEs for good (a bad ring fd, a fault): take them back (no SQPOLL, so the
     * kernel reads the SQ only inside io_uring_enter on this thread and moving the tail back is
     * safe) and complete them with {@code err} at the next reap.
     */
    private void failUnconsumed(int err) {
        counters.submitErrors++;
        takeBack(sqTail - sqHead, err);
        while (slots.resubmitWaiting()) {
            slots.failLater(slots.popResubmit(), err);
        }
        resubmitted = false;
    }

    /**
     * Takes back up to {@code max} unconsumed SQEs from the tail (at most as many as the caller prepared since its
     * last submit) and frees their slots without completing them: the requests are the caller's again. Home thread.
     */
    public int withdraw(int max) {
        ctx.assertHome();
        return takeBack(Math.min(max, sqTail - sqHead), 0);
    }

    // Moves the SQ tail back over its last n SQEs, failing their slots with err or (0) freeing them.
    private int takeBack(int n, int err) {
        for (int t = sqTail - n; t != sqTail; t++) {
            int slot = (int) q.sqes.get(ValueLayout.JAVA_LONG, (long) (t & q.sqMask) * SqeLayout.BYTES + SqeLayout.USER_DATA);
            if (err != 0) {
                slots.failLater(slot, err);
            } else {
                slots.release(slot);
            }
        }
        sqTail -= n;
        // Pairs with the same acquire in io_sqring_entries() as in submit().
        INT.setRelease(q.sq, q.sqTail, sqTail);
        return n;
    }

    /** Moves waiting resubmissions into the SQ; true when none is left waiting. */
    private boolean flushResubmits() {
        while (slots.resubmitWaiting() && sqSpace() > 0) {
            writeSqe(slots.popResubmit());
        }
        return !slots.resubmitWaiting();
    }

    // ---------------------------------------------------------------- completing

    /**
     * Completes everything the kernel has finished, reading the CQ ring in user space (no system
     * call), and calls the {@link Completion} once per finished request; resubmissions (EAGAIN,
     * short reads) are pushed at the end. Returns how many CQEs and failed submissions it handled.
     * A callback may prepare and submit, and may run the event loop: the CQ head is published before
     * each callback, so a nested reap continues at the next CQE.
     */
    public int reap() {
        ctx.assertHome();
        int n = 0;
        while (slots.failedWaiting()) {
            int slot = slots.popFailed();
            n++;
            finish(slot, slots.failedResult(slot));
        }
        while (true) {
            int head = cqHead;
            if (head == cqTailSeen) {
                // Pairs with smp_store_release(&rings->cq.tail) in io_commit_cqring()
                // (io_uring/io_uring.h): every CQE before the tail is fully written.
                cqTailSeen = (int) INT.getAcquire(q.cq, q.cqTail);
                if (head == cqTailSeen) {
                    break;
                }
            }
            long at = q.cqes + (long) (head & q.cqMask) * CqeLayout.BYTES;
            long data = q.cq.get(ValueLayout.JAVA_LONG, at + CqeLayout.USER_DATA);
            int res = q.cq.get(ValueLayout.JAVA_INT, at + CqeLayout.RES);
            cqHead = head + 1;
            // Pairs with the kernel's read of cq.head when it looks for free CQ space (io_get_cqe
            // and io_cqring_events in io_uring/io_uring.h; "smp_store_release to store head will
            // do", io_uring/io_uring.c): the CQE was read before its space is handed back.
            INT.setRelease(q.cq, q.cqHead, cqHead);
            counters.cqesReaped++;
            n++;
            if (data < 0 || data >= slots.size() || !slots.busy((int) data)) {
                throw new IllegalStateException("io_uring completion for unknown slot " + data + " on " + ctx.name());
            }
            complete((int) data, res);
        }
        if (resubmitted) {
            submit();
        }
        return n;
    }

    /** QEMU's result rules for one CQE ({@code luring_process_completions}). */
    private void complete(int slot, int res) {
        int op = slots.op(slot);
        if ((res == -Errno.EAGAIN || res == -Errno.EINTR) && op != SqeLayout.IORING_OP_NOP) {
            // Not expected for regular files, but seen with some devices; submit again as it was.
            counters.cqeEagains++;
            resubmit(slot);
            return;
        }
        long result = res;
        if (SqeLayout.isRead(op) && res >= 0) {
            long total = slots.done(slot) + res;
            if (res > 0 && total < slots.iovBytes(slot)) {
                counters.shortReadResubmits++;
                slots.setDone(slot, total);
                resubmit(slot);
                return;
            }
            result = total; // complete, or end of file after total bytes: the caller zero-fills
        }
        finish(slot, result);
    }

    private void resubmit(int slot) {
        resubmitted = true;
        if (!slots.resubmitWaiting() && sqSpace() > 0) {
            writeSqe(slot);
        } else {
            slots.queueResubmit(slot);
        }
    }

    private void finish(int slot, long result) {
        Object req = slots.release(slot);
        counters.completed++;
        completion.uringCompleted(req, result);
    }

    private void eventfdReady(int fd) {
        // Drain first, so a completion posted after this read signals the eventfd again.
        EventFds.eventfdRead(efd);
        if (!closed) {
            onReady.run();
        }
    }

    private void ringFdReady(int fd) {
        // Level-triggered: readable while CQEs wait, so reaping them is what re-arms it.
        if (!closed) {
            onReady.run();
        }
    }

    private boolean pollReady() {
        if (closed || !completionsReady()) {
            return false;
        }
        onReady.run();
        return true;
    }

    /** Whether a {@link #reap()} would find something: a read of the CQ tail. */
    public boolean completionsReady() {
        // Pairs with smp_store_release(&rings->cq.tail) in io_commit_cqring(), as in reap().
        return slots.failedWaiting() || (int) INT.getAcquire(q.cq, q.cqTail) != cqHead;
    }

    // ---------------------------------------------------------------- lifecycle and facts

    /**
     * Unregisters the handlers, closes the eventfd and the ring. Nothing may be in flight (drain
     * first: reap until {@link #inFlight()} is 0). Home thread.
     */
    public void close() {
        ctx.assertHome();
        if (closed) {
            return;
        }
        if (slots.inUse() > 0) {
            throw new IllegalStateException("io_uring of " + ctx.name() + " closed with " + slots.inUse()
                    + " requests in flight; drain first");
        }
        closed = true;
        efdHandler.remove();
        if (pollHandler != null) {
            pollHandler.remove();
        }
        q.close();
        if (efd >= 0) {
            FileIo.close(efd);
        }
        arena.close();
    }

    public AioContext context() {
        return ctx;
    }

    public boolean isClosed() {
        return closed;
    }

    /** SQ entries (the kernel's power of two). */
    public int sqEntries() {
        return q.sqEntries;
    }

    /** CQ entries: also the number of requests that may be in flight. */
    public int cqEntries() {
        return q.cqEntries;
    }

    /** IORING_FEAT_* the kernel offered. */
    public int features() {
        return q.features;
    }

    /** Whether the SQ and CQ rings share one mapping (IORING_FEAT_SINGLE_MMAP). */
    public boolean singleMmap() {
        return q.singleMmap();
    }

    /** Accepted requests not completed yet (prepared, in the kernel, or waiting for resubmission). */
    public int inFlight() {
        return slots.inUse();
    }

    /** SQEs prepared and not yet consumed by the kernel, plus resubmissions waiting for SQ room. */
    public int pendingSqes() {
        return sqTail - sqHead + slots.resubmitCount();
    }

    /** Requests that could be prepared now: free SQEs and free slots, whichever is fewer. */
    public int room() {
        return Math.min(sqSpace(), slots.free());
    }

    /** What this ring did (enter calls, SQEs, CQEs, EAGAINs, short-read resubmits, ...). */
    public UringCounters counters() {
        return counters;
    }

    @Override
    public String toString() {
        return "IoUring[" + ctx.name() + " " + wake + " sq=" + q.sqEntries + " cq=" + q.cqEntries + " inFlight=" + inFlight()
                + " pending=" + pendingSqes() + "]";
    }
}
