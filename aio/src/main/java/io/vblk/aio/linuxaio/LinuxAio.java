package io.vblk.aio.linuxaio;

import io.vblk.aio.AioContext;
import io.vblk.aio.Bh;
import io.vblk.aio.DeferCall;
import io.vblk.aio.FdHandler;
import io.vblk.aio.metrics.LatencyHistogram;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.Sys;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;

/**
 * Home thread: the owning IoThread. No locking. Every entry point asserts it (seed 002:
 * completions processed from two threads make counters go backwards and requests complete twice).
 *
 * <p>The Linux native AIO engine of one {@link AioContext}, as QEMU's {@code block/linux-aio.c}: one
 * kernel AIO context, a pending queue whose submission is deferred to the end of the current
 * defer-call section (so every request queued in one pass goes down in one {@code io_submit}),
 * completion through an eventfd ({@code IOCB_FLAG_RESFD}) registered on the context, and
 * completions read straight from the kernel's completion ring ({@link AioRingLayout}), with
 * {@code io_getevents} only when the ring's magic or feature bits are not the ones known here.
 *
 * <p>Nothing is allocated per request: the {@link AioRequest}s belong to the drivers, and the
 * iocb array, the iocb pointer array, the io_event array (fallback) and the slot table are made
 * once. A request gets a slot (its iocb and its {@code aio_data}) only while it is in flight, so
 * in-flight requests are bounded by the ring size.
 *
 * <p>Re-entry (seed 000) is bounded by {@link SubmitGuard}: see {@link #ioqSubmit()}.
 */
@SuppressWarnings("restricted") // reinterpret of the kernel ring; native access is enabled for vblk
public final class LinuxAio {
    /** Requests in flight at most, and the {@code io_setup} size (QEMU's MAX_EVENTS). */
    public static final int DEFAULT_RING_SIZE = 1024;
    /** Batch size when neither the context nor the driver says (QEMU's DEFAULT_MAX_BATCH). */
    public static final int DEFAULT_MAX_BATCH = 32;

    private static final Object KEY = new Object();
    /** int accessor with (segment, offset) coordinates for acquire/release on the ring. */
    private static final VarHandle INT = ValueLayout.JAVA_INT.varHandle();
    private static final DeferCall.Fn<LinuxAio> SUBMIT_FN = LinuxAio::deferredSubmit;

    private static final class Holder {
        LinuxAio engine;
    }

    /** How completions are read; {@link #RING} unless the ring is not recognised. */
    public enum CompletionMode { RING, GETEVENTS }

    private final AioContext ctx;
    private final Holder holder;
    private final int ringSize;
    private final long kctx;
    private final CompletionMode mode;
    private final MemorySegment ring;
    private final int ringNr;
    private final int efd;
    private final FdHandler efdHandler;
    private final Bh completionBh;
    private final Arena arena;
    private final MemorySegment iocbs;
    private final MemorySegment iocbPtrs;
    private final MemorySegment events;
    private final MemorySegment zeroTimeout;
    private final AioRequest[] slots;
    private final int[] freeSlots;
    private int freeTop;
    private final SubmitGuard depthGuard;

    // The queue (QEMU's LaioQueue).
    private AioRequest pendingHead;
    private AioRequest pendingTail;
    private int inQueue;
    private int inFlight;
    private boolean blocked;
    /** A capped submit left work for the completion bottom half; a pass must not cancel it. */
    private boolean resumeByBh;

    // io_getevents cursors, kept here so a nested completion pass continues where the outer stopped.
    private int eventIdx;
    private int eventMax;

    private WorkerPool pool;
    private int refs;
    private boolean destroyed;

    private long ioSubmitCalls;
    private long submitted;
    private long completed;
    private long submitErrors;
    private long eagains;
    private long completionPasses;
    private long ringEvents;
    private long geteventsCalls;
    private long completionBhRuns;
    /** Requests offered per io_submit call. */
    private final LatencyHistogram batchSizes = new LatencyHistogram();

    private LinuxAio(AioContext ctx, Holder holder, int ringSize, int kernelEvents, boolean forceGetevents) {
        this.ctx = ctx;
        this.holder = holder;
        this.ringSize = ringSize;
        long id = Sys.ioSetup(kernelEvents);
        if (id < 0) {
            throw new IllegalStateException("io_setup(" + kernelEvents + ") failed: " + Errno.name((int) id)
                    + (id == -Errno.EAGAIN ? " (fs.aio-max-nr reached; raise it with sysctl)" : ""));
        }
        this.kctx = id;
        MemorySegment header = MemorySegment.ofAddress(id).reinterpret(AioRingLayout.HEADER_BYTES);
        boolean known = header.get(ValueLayout.JAVA_INT, AioRingLayout.MAGIC) == AioRingLayout.AIO_RING_MAGIC
                && header.get(ValueLayout.JAVA_INT, AioRingLayout.INCOMPAT_FEATURES)
                        == AioRingLayout.AIO_RING_INCOMPAT_FEATURES
                && header.get(ValueLayout.JAVA_INT, AioRingLayout.HEADER_LENGTH) == AioRingLayout.HEADER_BYTES;
        this.mode = known && !forceGetevents ? CompletionMode.RING : CompletionMode.GETEVENTS;
        this.ringNr = header.get(ValueLayout.JAVA_INT, AioRingLayout.NR);
        this.ring = mode == CompletionMode.RING
                ? MemorySegment.ofAddress(id).reinterpret(AioRingLayout.eventOffset(ringNr))
                : null;

        int fd = Sys.eventfd(0, Sys.EFD_NONBLOCK | Sys.EFD_CLOEXEC);
        if (fd < 0) {
            Sys.ioDestroy(id);
            throw new IllegalStateException("eventfd for AIO completions failed: " + Errno.name(fd));
        }
        this.efd = fd;
        this.arena = Arena.ofShared();
        this.iocbs = arena.allocate((long) ringSize * IocbLayout.BYTES, 64);
        this.iocbPtrs = arena.allocate((long) ringSize * 8, 8);
        this.events = arena.allocate((long) ringSize * IoEventLayout.BYTES, 8);
        this.zeroTimeout = arena.allocate(16, 8); // struct timespec {0, 0}: io_getevents does not wait
        this.slots = new AioRequest[ringSize];
        this.freeSlots = new int[ringSize];
        for (int i = 0; i < ringSize; i++) {
            freeSlots[i] = ringSize - 1 - i; // slot 0 on top
        }
        this.freeTop = ringSize;
        this.depthGuard = new SubmitGuard(ctx);
        this.completionBh = ctx.bh("linux-aio-completion", this::completionBh);
        // Not external: AIO completions must keep flowing while the context is drained.
        this.efdHandler = ctx.addFdHandler("linux-aio", efd, false, this::completionReady);
    }

    /**
     * This context's engine, created on first use with {@link #DEFAULT_RING_SIZE} slots; takes a
     * reference that {@link #release()} drops (the last one destroys the kernel context: io_setup
     * slots are a system-wide resource, fs.aio-max-nr). Home thread.
     */
    public static LinuxAio of(AioContext ctx) {
        return of(ctx, DEFAULT_RING_SIZE, false);
    }

    /**
     * As {@link #of(AioContext)}, choosing ring size and completion mode when this call creates the
     * engine (tests use small rings and the io_getevents fallback). Home thread.
     */
    public static LinuxAio of(AioContext ctx, int ringSize, boolean forceGetevents) {
        ctx.assertHome();
        if (ringSize < 1 || ringSize > 65536) {
            throw new IllegalArgumentException("AIO ring size must be 1..65536, got " + ringSize);
        }
        Holder h = ctx.attachment(KEY, c -> new Holder());
        if (h.engine == null) {
            h.engine = new LinuxAio(ctx, h, ringSize, ringSize, forceGetevents);
        }
        h.engine.refs++;
        return h.engine;
    }

    /**
     * A private engine (not the context's shared one) whose kernel context is sized for
     * {@code kernelEvents} while up to {@code maxInFlight} requests may be submitted: lets tests
     * make the kernel itself answer EAGAIN. Release it like any other. Home thread.
     */
    static LinuxAio createUnshared(AioContext ctx, int kernelEvents, int maxInFlight, boolean forceGetevents) {
        ctx.assertHome();
        LinuxAio e = new LinuxAio(ctx, new Holder(), maxInFlight, kernelEvents, forceGetevents);
        e.refs = 1;
        return e;
    }

    /**
     * This context's engine if one exists, else null; creates none and takes no reference (for
     * metrics, which must not keep an engine alive). Home thread.
     */
    public static LinuxAio peek(AioContext ctx) {
        ctx.assertHome();
        return ctx.attachment(KEY, c -> new Holder()).engine;
    }

    // ---------------------------------------------------------------- submission

    /**
     * Queues {@code req}; it goes down with the rest of this defer-call section's requests at the
     * section's end, or at once when {@code devMaxBatch} requests are waiting. Requests the kernel
     * AIO cannot run (FALLOCATE; FDSYNC where {@link #fdsyncSupported()} is false) go to the
     * context's {@link WorkerPool}. The completion may run before this returns. Home thread.
     */
    public void submit(AioRequest req, int devMaxBatch) {
        ctx.assertHome();
        req.checkSubmittable();
        if (destroyed) {
            throw new IllegalStateException("Linux AIO engine of " + ctx.name() + " is released");
        }
        if (req.op == AioRequest.FALLOCATE || (req.op == AioRequest.FDSYNC && !FdsyncProbe.SUPPORTED)) {
            if (pool == null) {
                pool = WorkerPool.of(ctx);
            }
            pool.submit(req);
            return;
        }
        req.state = AioRequest.QUEUED;
        if (pendingTail == null) {
            pendingHead = req;
        } else {
            pendingTail.next = req;
        }
        pendingTail = req;
        inQueue++;
        if (!blocked) {
            if (inQueue >= maxBatch(devMaxBatch)) {
                ioqSubmit();
            } else {
                ctx.deferCall().defer(SUBMIT_FN, this);
            }
        }
    }

    /** min(context aio-max-batch or {@link #DEFAULT_MAX_BATCH}, driver's, free ring slots), at least 1. */
    private int maxBatch(int devMaxBatch) {
        int b = ctx.options().aioMaxBatch();
        if (b == 0) {
            b = DEFAULT_MAX_BATCH;
        }
        if (devMaxBatch > 0) {
            b = Math.min(b, devMaxBatch);
        }
        return Math.max(1, Math.min(b, ringSize - inFlight));
    }

    private static void deferredSubmit(LinuxAio s) {
        if (!s.blocked && s.pendingHead != null && !s.destroyed) {
            s.ioqSubmit();
        }
    }

    /**
     * Submits everything pending that fits in the ring, in as few {@code io_submit} calls as the
     * kernel allows, then processes whatever completed meanwhile.
     *
     * <p>Seed 000's cycle runs through here: io_submit completes page-cache requests before it
     * returns → {@link #processCompletions()} (a defer-call section) → a completion callback
     * submits the next request, which defers {@link #deferredSubmit} → the section's end runs
     * it → ioqSubmit, one frame deeper. The {@link SubmitGuard} stops it at
     * {@link SubmitGuard#DEFAULT_CAP} levels: the capped call returns without submitting and
     * schedules the completion bottom half, which resumes from the event loop. No request is
     * lost; one loop round-trip of latency is paid, and only when the cap is hit.
     */
    private void ioqSubmit() {
        if (!depthGuard.enter()) {
            resumeByBh = true;
            completionBh.schedule();
            return;
        }
        AioRequest failed = null;
        AioRequest failedTail = null;
        try {
            int ret;
            int len;
            do {
                if (inFlight >= ringSize) {
                    break;
                }
                len = 0;
                long ptrs = iocbPtrs.address();
                for (AioRequest r = pendingHead; r != null && inFlight + len < ringSize; r = r.next) {
                    int slot = freeSlots[--freeTop];
                    r.slot = slot;
                    long at = (long) slot * IocbLayout.BYTES;
                    int opcode = switch (r.op) {
                        case AioRequest.READV -> IocbLayout.IOCB_CMD_PREADV;
                        case AioRequest.WRITEV -> IocbLayout.IOCB_CMD_PWRITEV;
                        default -> IocbLayout.IOCB_CMD_FDSYNC;
                    };
                    IocbLayout.write(iocbs, at, slot, opcode, r.fd, r.addr, r.iovcnt, r.offset, efd);
                    iocbPtrs.set(ValueLayout.JAVA_LONG, (long) len * 8, iocbs.address() + at);
                    len++;
                }
                ret = Sys.ioSubmit(kctx, len, ptrs);
                ioSubmitCalls++;
                batchSizes.record(len);
                if (ret < 0) {
                    releaseSlots(pendingHead, len);
                    if (ret == -Errno.EAGAIN) {
                        eagains++;
                        break;
                    }
                    // Fail the first, retry the rest (QEMU ioq_submit): the kernel reports the
                    // error of the first iocb it could not take; the others may be fine.
                    submitErrors++;
                    AioRequest first = popPending();
                    first.result = ret;
                    first.next = null;
                    if (failedTail == null) {
                        failed = first;
                    } else {
                        failedTail.next = first;
                    }
                    failedTail = first;
                    continue;
                }
                AioRequest r = pendingHead;
                for (int i = 0; i < ret; i++) {
                    AioRequest n = r.next;
                    r.state = AioRequest.IN_FLIGHT;
                    r.next = null;
                    slots[r.slot] = r;
                    r = n;
                }
                pendingHead = r;
                if (r == null) {
                    pendingTail = null;
                }
                inQueue -= ret;
                inFlight += ret;
                submitted += ret;
                releaseSlots(pendingHead, len - ret);
                // A short count means the kernel stopped at an iocb it refused; the next call
                // reports that iocb's error (failed above) or EAGAIN (blocked), so go on.
            } while (pendingHead != null);
            blocked = inQueue > 0;
            if (blocked && inFlight == 0) {
                // Nothing in flight will complete to unblock us; retry from the loop.
                completionBh.schedule();
            }
            if (failed != null) {
                completeFailed(failed);
            }
            if (inFlight > 0) {
                processCompletions();
            }
        } finally {
            depthGuard.exit();
        }
    }

    private AioRequest popPending() {
        AioRequest r = pendingHead;
        pendingHead = r.next;
        if (pendingHead == null) {
            pendingTail = null;
        }
        inQueue--;
        return r;
    }

    /** Returns the slots taken by the first {@code n} requests from {@code from}, last first. */
    private void releaseSlots(AioRequest from, int n) {
        if (n <= 0) {
            return;
        }
        // Slots were popped in list order; push them back in reverse to keep the stack as it was.
        int[] tmp = freeSlots;
        AioRequest r = from;
        int base = freeTop;
        for (int i = 0; i < n; i++) {
            tmp[base + n - 1 - i] = r.slot;
            r.slot = -1;
            r = r.next;
        }
        freeTop = base + n;
    }

    private void completeFailed(AioRequest list) {
        DeferCall dc = ctx.deferCall();
        dc.begin();
        try {
            while (list != null) {
                AioRequest r = list;
                list = r.next;
                completed++;
                r.complete(r.result);
            }
        } finally {
            dc.end();
        }
    }

    // ---------------------------------------------------------------- completion

    private void completionReady(int fd) {
        // Drain the eventfd first, so a completion that lands after the read re-arms it.
        Sys.eventfdRead(efd);
        processCompletionsAndSubmit();
    }

    private void completionBh() {
        completionBhRuns++;
        resumeByBh = false;
        processCompletionsAndSubmit();
    }

    private void processCompletionsAndSubmit() {
        ctx.assertHome();
        if (destroyed) {
            return;
        }
        processCompletions();
        if (pendingHead != null) {
            ioqSubmit();
        }
    }

    /**
     * Completes everything the kernel has finished, inside a defer-call section so the guest
     * notifications (and the submissions) the callbacks cause are batched to its end. The
     * completion bottom half is scheduled first, so a nested event loop run from a callback still
     * sees the remaining completions; it is cancelled at the end unless a capped submit needs it.
     */
    private void processCompletions() {
        DeferCall dc = ctx.deferCall();
        dc.begin();
        completionBh.schedule();
        completionPasses++;
        try {
            if (mode == CompletionMode.RING) {
                drainRing();
            } else {
                drainGetevents();
            }
        } finally {
            if (!resumeByBh) {
                completionBh.cancel();
            }
            // A nested pass drained everything; tell the outer one by leaving the cursors empty.
            eventIdx = 0;
            eventMax = 0;
            dc.end();
        }
    }

    /**
     * Consumes ring entries one at a time: each is read, then {@code head} is released past it,
     * then its callback runs. A nested pass started by that callback therefore starts at the next
     * entry; the cursor is the ring's own {@code head}.
     */
    private void drainRing() {
        while (true) {
            int head = ring.get(ValueLayout.JAVA_INT, AioRingLayout.HEAD);
            // Pairs with the kernel's smp_wmb() between writing the event and publishing tail in
            // aio_complete() (fs/aio.c): entries before tail are fully written.
            int tail = (int) INT.getAcquire(ring, (long) AioRingLayout.TAIL);
            if (head == tail) {
                return;
            }
            if (head < 0 || head >= ringNr || tail < 0 || tail >= ringNr) {
                throw new IllegalStateException("AIO ring of " + ctx.name() + " has head " + head
                        + ", tail " + tail + " outside 0.." + ringNr);
            }
            long ev = AioRingLayout.eventOffset(head);
            long data = ring.get(ValueLayout.JAVA_LONG, ev + IoEventLayout.DATA);
            long res = ring.get(ValueLayout.JAVA_LONG, ev + IoEventLayout.RES);
            // Pairs with the kernel's read of ring->head when it refills free request slots
            // (user_refill_reqs_available in fs/aio.c): the entry has been read before it is freed.
            INT.setRelease(ring, (long) AioRingLayout.HEAD, head + 1 == ringNr ? 0 : head + 1);
            ringEvents++;
            completeSlot(data, res);
        }
    }

    private void drainGetevents() {
        while (true) {
            if (eventIdx >= eventMax) {
                int n = Sys.ioGetevents(kctx, 0, ringSize, events.address(), zeroTimeout.address());
                geteventsCalls++;
                eventIdx = 0;
                eventMax = Math.max(n, 0);
                if (n <= 0) {
                    return;
                }
            }
            long ev = (long) eventIdx * IoEventLayout.BYTES;
            long data = events.get(ValueLayout.JAVA_LONG, ev + IoEventLayout.DATA);
            long res = events.get(ValueLayout.JAVA_LONG, ev + IoEventLayout.RES);
            eventIdx++; // before the callback: a nested pass continues after this event
            completeSlot(data, res);
        }
    }

    private void completeSlot(long data, long res) {
        if (data < 0 || data >= ringSize || slots[(int) data] == null) {
            throw new IllegalStateException("AIO completion for unknown slot " + data + " on " + ctx.name());
        }
        int slot = (int) data;
        AioRequest r = slots[slot];
        slots[slot] = null;
        freeSlots[freeTop++] = slot;
        inFlight--; // one by one: a nested pass sees exact counts
        completed++;
        r.complete(res);
    }

    // ---------------------------------------------------------------- lifecycle and facts

    /**
     * Drops a reference; the last one destroys the kernel context, the eventfd and the handler.
     * Nothing may be queued or in flight then. Home thread.
     */
    public void release() {
        ctx.assertHome();
        if (refs <= 0) {
            throw new IllegalStateException("Linux AIO engine of " + ctx.name() + " released more often than taken");
        }
        if (--refs > 0) {
            return;
        }
        if (inFlight > 0 || inQueue > 0 || (pool != null && pool.inFlight() > 0)) {
            refs++;
            throw new IllegalStateException("Linux AIO engine of " + ctx.name() + " released with "
                    + inFlight + " in flight and " + inQueue + " queued; drain first");
        }
        destroyed = true;
        holder.engine = null;
        efdHandler.remove();
        completionBh.delete();
        Sys.ioDestroy(kctx);
        Sys.close(efd);
        arena.close();
        if (pool != null) {
            pool.release();
            pool = null;
        }
    }

    /**
     * Whether this kernel runs IOCB_CMD_FDSYNC (Linux 4.18+), probed once per JVM on a memfd. Any
     * thread.
     */
    public static boolean fdsyncSupported() {
        return FdsyncProbe.SUPPORTED;
    }

    public AioContext context() {
        return ctx;
    }

    public CompletionMode completionMode() {
        return mode;
    }

    public int ringSize() {
        return ringSize;
    }

    /** Requests in the kernel. */
    public int inFlight() {
        return inFlight;
    }

    /** Requests queued and not yet submitted. */
    public int queued() {
        return inQueue;
    }

    /** Requests at the worker pool (fallocate, fallback fdatasync). */
    public int inPool() {
        return pool == null ? 0 : pool.inFlight();
    }

    /** True after the kernel refused more (EAGAIN) or the ring is full, until a completion frees a slot. */
    public boolean blocked() {
        return blocked;
    }

    public SubmitGuard submitGuard() {
        return depthGuard;
    }

    /** Times the seed-000 depth cap stopped a submit. */
    public long submitCapHits() {
        return depthGuard.capHits();
    }

    /** Deepest submit nesting seen. */
    public int maxSubmitDepth() {
        return depthGuard.maxDepth();
    }

    public long ioSubmitCalls() {
        return ioSubmitCalls;
    }

    public long submittedRequests() {
        return submitted;
    }

    public long completedRequests() {
        return completed;
    }

    /** io_submit calls that failed with something else than EAGAIN (their first request failed). */
    public long submitErrors() {
        return submitErrors;
    }

    public long eagainCount() {
        return eagains;
    }

    public long completionPasses() {
        return completionPasses;
    }

    /** Completions read from the kernel's completion ring (mode {@link CompletionMode#RING}). */
    public long ringEvents() {
        return ringEvents;
    }

    /** io_getevents calls (mode {@link CompletionMode#GETEVENTS}). */
    public long geteventsCalls() {
        return geteventsCalls;
    }

    /** Runs of the completion bottom half. */
    public long completionBhRuns() {
        return completionBhRuns;
    }

    /** Requests offered to each io_submit call; snapshots from any thread. */
    public LatencyHistogram batchSizes() {
        return batchSizes;
    }

    @Override
    public String toString() {
        return "LinuxAio[" + ctx.name() + " " + mode + " inFlight=" + inFlight + " queued=" + inQueue
                + (blocked ? " blocked" : "") + "]";
    }

    /** Lazily probes IOCB_CMD_FDSYNC once: an FDSYNC on a memfd (shmem has an fsync). */
    private static final class FdsyncProbe {
        static final boolean SUPPORTED = probe();

        private static boolean probe() {
            int fd = Sys.memfdCreate("vblk-fdsync-probe", Sys.MFD_CLOEXEC);
            if (fd < 0) {
                return false;
            }
            long id = Sys.ioSetup(1);
            if (id < 0) {
                Sys.close(fd);
                return false;
            }
            try (Arena a = Arena.ofConfined()) {
                MemorySegment iocb = a.allocate(IocbLayout.BYTES, 64);
                MemorySegment ptr = a.allocate(8, 8);
                MemorySegment ev = a.allocate(IoEventLayout.BYTES, 8);
                MemorySegment ts = a.allocate(16, 8);
                ts.set(ValueLayout.JAVA_LONG, 0, 5); // 5 s bound
                IocbLayout.write(iocb, 0, 7, IocbLayout.IOCB_CMD_FDSYNC, fd, 0, 0, 0, -1);
                ptr.set(ValueLayout.JAVA_LONG, 0, iocb.address());
                if (Sys.ioSubmit(id, 1, ptr.address()) != 1) {
                    return false; // -EINVAL: opcode unknown to this kernel
                }
                return Sys.ioGetevents(id, 1, 1, ev.address(), ts.address()) == 1
                        && ev.get(ValueLayout.JAVA_LONG, IoEventLayout.RES) == 0;
            } finally {
                Sys.ioDestroy(id);
                Sys.close(fd);
            }
        }
    }
}
