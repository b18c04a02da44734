package io.vblk.aio.linuxaio;

import io.vblk.aio.AioContext;
import io.vblk.aio.FdHandler;
import io.vblk.aio.PollHandler;
import io.vblk.aio.engine.EngineBackend;
import io.vblk.aio.engine.IoEngine;
import io.vblk.aio.engine.IoRequest;
import io.vblk.aio.engine.SubmissionQueue;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.AioCalls;
import io.vblk.aio.sys.EventFds;
import io.vblk.aio.sys.FileIo;
import io.vblk.aio.sys.Mmap;
import io.vblk.aio.threadpool.WorkerPool;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;

/**
 * Home thread: the owning IoThread. No locking; the {@link SubmissionQueue} in front of it
 * asserts the home thread at every entry point.
 *
 * <p>The Linux native AIO backend of one {@link AioContext}, as QEMU's {@code block/linux-aio.c}:
 * one kernel AIO context, completion through an eventfd ({@code IOCB_FLAG_RESFD}) registered on
 * the context, and completions read straight from the kernel's completion ring
 * ({@link AioRingLayout}), with {@code io_getevents} only when the ring's magic or feature bits are
 * not the ones known here. Queueing, batching, EAGAIN and the seed-000 guard are the queue's.
 *
 * <p>Nothing is allocated per request: the iocb array, the iocb pointer array, the io_event array
 * (fallback) and the slot table are made once. A request gets a slot (its iocb and its
 * {@code aio_data}) only while it is in flight, so in-flight requests are bounded by the ring size.
 * Operations the kernel AIO cannot run (FALLOCATE, SECURE_DISCARD; FDSYNC where {@link #fdsyncSupported()} is
 * false) go to the context's {@link WorkerPool} engine.
 */
@SuppressWarnings("restricted") // reinterpret of the kernel ring; native access is enabled for vblk
public final class LinuxAio implements EngineBackend {
    /** Requests in flight at most, and the {@code io_setup} size (QEMU's MAX_EVENTS). */
    public static final int DEFAULT_RING_SIZE = 1024;
    /** Batch size when neither the context nor the driver says (QEMU's DEFAULT_MAX_BATCH). */
    public static final int DEFAULT_MAX_BATCH = SubmissionQueue.DEFAULT_MAX_BATCH;

    private static final Object KEY = new Object();
    /** int accessor with (segment, offset) coordinates for acquire/release on the ring. */
    private static final VarHandle INT = ValueLayout.JAVA_INT.varHandle();

    /** How completions are read; {@link #RING} unless the ring is not recognised. */
    public enum CompletionMode { RING, GETEVENTS }

    private final AioContext ctx;
    private final int ringSize;
    private final long kctx;
    private final CompletionMode mode;
    private final MemorySegment ring;
    private final int ringNr;
    private final int efd;
    private final Arena arena;
    private final MemorySegment iocbs;
    private final MemorySegment iocbPtrs;
    private final MemorySegment events;
    private final MemorySegment zeroTimeout;
    private final IoRequest[] slots;
    private final int[] freeSlots;
    private int freeTop;
    private FdHandler efdHandler;
    private PollHandler ringPoll;
    private EngineBackend.Queue queue;

    // io_getevents cursors, kept here so a nested completion pass continues where the outer stopped.
    private int eventIdx;
    private int eventMax;

    private long ringEvents;
    private long geteventsCalls;

    private LinuxAio(AioContext ctx, int ringSize, int kernelEvents, boolean forceGetevents) {
        this.ctx = ctx;
        this.ringSize = ringSize;
        long id = AioCalls.ioSetup(kernelEvents);
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

        int fd = EventFds.eventfd(0, EventFds.EFD_NONBLOCK | EventFds.EFD_CLOEXEC);
        if (fd < 0) {
            AioCalls.ioDestroy(id);
            throw new IllegalStateException("eventfd for AIO completions failed: " + Errno.name(fd));
        }
        this.efd = fd;
        this.arena = Arena.ofShared();
        this.iocbs = arena.allocate((long) ringSize * IocbLayout.BYTES, 64);
        this.iocbPtrs = arena.allocate((long) ringSize * 8, 8);
        this.events = arena.allocate((long) ringSize * IoEventLayout.BYTES, 8);
        this.zeroTimeout = arena.allocate(16, 8); // struct timespec {0, 0}: io_getevents does not wait
        this.slots = new IoRequest[ringSize];
        this.freeSlots = new int[ringSize];
        for (int i = 0; i < ringSize; i++) {
            freeSlots[i] = ringSize - 1 - i; // slot 0 on top
        }
        this.freeTop = ringSize;
    }

    /**
     * This context's Linux AIO engine, created on first use with {@link #DEFAULT_RING_SIZE} slots;
     * takes a reference that {@link SubmissionQueue#release()} drops (the last one destroys the
     * kernel context: io_setup slots are a system-wide resource, fs.aio-max-nr). Home thread.
     */
    public static SubmissionQueue of(AioContext ctx) {
        return of(ctx, DEFAULT_RING_SIZE, false);
    }

    /**
     * As {@link #of(AioContext)}, choosing ring size and completion mode when this call creates the
     * engine (tests use small rings and the io_getevents fallback). Home thread.
     */
    public static SubmissionQueue of(AioContext ctx, int ringSize, boolean forceGetevents) {
        ctx.assertHome();
        if (ringSize < 1 || ringSize > 65536) {
            throw new IllegalArgumentException("AIO ring size must be 1..65536, got " + ringSize);
        }
        return SubmissionQueue.shared(ctx, KEY, c -> new LinuxAio(c, ringSize, ringSize, forceGetevents));
    }

    /**
     * A private engine (not the context's shared one) whose kernel context is sized for
     * {@code kernelEvents} while up to {@code maxInFlight} requests may be submitted: lets tests
     * make the kernel itself answer EAGAIN. Release it like any other. Home thread.
     */
    static SubmissionQueue createUnshared(AioContext ctx, int kernelEvents, int maxInFlight, boolean forceGetevents) {
        ctx.assertHome();
        return new SubmissionQueue(ctx, new LinuxAio(ctx, maxInFlight, kernelEvents, forceGetevents));
    }

    /**
     * This context's engine if one exists, else null; creates none and takes no reference (for
     * metrics, which must not keep an engine alive). Home thread.
     */
    public static SubmissionQueue peek(AioContext ctx) {
        return SubmissionQueue.peekShared(ctx, KEY);
    }

    /** The Linux AIO backend behind {@code engine}, or null when it has another backend. */
    public static LinuxAio backendOf(IoEngine engine) {
        return engine instanceof SubmissionQueue q && q.backend() instanceof LinuxAio la ? la : null;
    }

    // ---------------------------------------------------------------- EngineBackend

    @Override
    public String kind() {
        return "linux-aio";
    }

    @Override
    public void attach(EngineBackend.Queue q) {
        this.queue = q;
        // Not external: AIO completions must keep flowing while the context is drained.
        this.efdHandler = ctx.addFdHandler("linux-aio", efd, this::completionReady);
        if (mode == CompletionMode.RING) {
            // QEMU's qemu_laio_poll_cb: the ring is readable from user space, so the loop's busy
            // poll can see completions before the eventfd wakes it. No pollBegin/pollEnd: the
            // eventfd stays armed, so a completion after the last poll still wakes the loop.
            this.ringPoll = ctx.addPollHandler("linux-aio.ring", this::pollRing);
        }
    }

    @Override
    public int capacity() {
        return ringSize;
    }

    @Override
    public boolean supports(int op) {
        return op == IoRequest.READV || op == IoRequest.WRITEV || (op == IoRequest.FDSYNC && FdsyncProbe.SUPPORTED);
    }

    /** The context's worker pool, for fallocate and (old kernels) fdatasync. */
    @Override
    public IoEngine openFallback() {
        return WorkerPool.of(ctx);
    }

    /** One {@code io_submit} of the first {@code n} queued requests, each in a free slot's iocb. */
    @Override
    public int submit(IoRequest first, int n) {
        long ptrs = iocbPtrs.address();
        IoRequest r = first;
        for (int i = 0; i < n; i++, r = r.nextQueued()) {
            int slot = freeSlots[--freeTop];
            r.backendSlot(slot);
            slots[slot] = r;
            long at = (long) slot * IocbLayout.BYTES;
            int opcode = switch (r.op()) {
                case IoRequest.READV -> IocbLayout.IOCB_CMD_PREADV;
                case IoRequest.WRITEV -> IocbLayout.IOCB_CMD_PWRITEV;
                default -> IocbLayout.IOCB_CMD_FDSYNC;
            };
            IocbLayout.write(iocbs, at, slot, opcode, r.fd(), r.iovAddress(), r.iovCount(), r.offset(), efd);
            iocbPtrs.set(ValueLayout.JAVA_LONG, (long) i * 8, iocbs.address() + at);
        }
        int ret = AioCalls.ioSubmit(kctx, n, ptrs);
        int taken = Math.max(ret, 0);
        // The requests the kernel did not take go back to the queue: free their slots.
        releaseSlots(first, taken, n - taken);
        return ret;
    }

    /** Frees the slots of the {@code count} requests after the first {@code skip} from {@code from}. */
    private void releaseSlots(IoRequest from, int skip, int count) {
        if (count <= 0) {
            return;
        }
        IoRequest r = from;
        for (int i = 0; i < skip; i++) {
            r = r.nextQueued();
        }
        // Slots were popped in list order; push them back in reverse to keep the stack as it was.
        int base = freeTop;
        for (int i = 0; i < count; i++) {
            int slot = r.backendSlot();
            slots[slot] = null;
            freeSlots[base + count - 1 - i] = slot;
            r.backendSlot(-1);
            r = r.nextQueued();
        }
        freeTop = base + count;
    }

    @Override
    public void reap(EngineBackend.Queue q) {
        if (mode == CompletionMode.RING) {
            drainRing(q);
            return;
        }
        try {
            drainGetevents(q);
        } finally {
            // A nested pass drained everything; tell the outer one by leaving the cursors empty.
            eventIdx = 0;
            eventMax = 0;
        }
    }

    /**
     * Whether the completion ring holds entries not yet consumed (QEMU's {@code io_getevents_peek}):
     * one acquire read of {@code tail}, nothing consumed. Always false in {@link CompletionMode#GETEVENTS}.
     */
    public boolean completionsReady() {
        if (mode != CompletionMode.RING) {
            return false;
        }
        // Pairs with the kernel's smp_wmb() before publishing tail in aio_complete(), as in drainRing.
        return ring.get(ValueLayout.JAVA_INT, AioRingLayout.HEAD) != (int) INT.getAcquire(ring, (long) AioRingLayout.TAIL);
    }

    /**
     * The busy-poll hook: completes what the ring holds without reading the eventfd (its count is
     * consumed by the next fd wake-up, which then finds the ring empty: one spare pass per busy
     * period, as QEMU's poll_ready).
     */
    private boolean pollRing() {
        if (!completionsReady()) {
            return false;
        }
        queue.completionEvent();
        return true;
    }

    private void completionReady(int fd) {
        // Drain the eventfd first, so a completion that lands after the read re-arms it.
        EventFds.eventfdRead(efd);
        queue.completionEvent();
    }

    /**
     * Consumes ring entries one at a time: each is read, then {@code head} is released past it,
     * then its callback runs. A nested pass started by that callback therefore starts at the next
     * entry; the cursor is the ring's own {@code head}.
     */
    private void drainRing(EngineBackend.Queue q) {
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
            completeSlot(q, data, res);
        }
    }

    private void drainGetevents(EngineBackend.Queue q) {
        while (true) {
            if (eventIdx >= eventMax) {
                int n = AioCalls.ioGetevents(kctx, 0, ringSize, events.address(), zeroTimeout.address());
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
            completeSlot(q, data, res);
        }
    }

    private void completeSlot(EngineBackend.Queue q, long data, long res) {
        if (data < 0 || data >= ringSize || slots[(int) data] == null) {
            throw new IllegalStateException("AIO completion for unknown slot " + data + " on " + ctx.name());
        }
        int slot = (int) data;
        IoRequest r = slots[slot];
        slots[slot] = null;
        freeSlots[freeTop++] = slot;
        q.completed(r, res);
    }

    /** Destroys the kernel context, the eventfd and the handler. */
    @Override
    public void close() {
        if (ringPoll != null) {
            ringPoll.remove();
        }
        efdHandler.remove();
        AioCalls.ioDestroy(kctx);
        FileIo.close(efd);
        arena.close();
    }

    // ---------------------------------------------------------------- facts

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

    /** Completions read from the kernel's completion ring (mode {@link CompletionMode#RING}). */
    public long ringEvents() {
        return ringEvents;
    }

    /** io_getevents calls (mode {@link CompletionMode#GETEVENTS}). */
    public long geteventsCalls() {
        return geteventsCalls;
    }

    @Override
    public String toString() {
        return "LinuxAio[" + ctx.name() + " " + mode + "]";
    }

    /** Lazily probes IOCB_CMD_FDSYNC once: an FDSYNC on a memfd (shmem has an fsync). */
    private static final class FdsyncProbe {
        static final boolean SUPPORTED = probe();

        private static boolean probe() {
            int fd = Mmap.memfdCreate("vblk-fdsync-probe", Mmap.MFD_CLOEXEC);
            if (fd < 0) {
                return false;
            }
            long id = AioCalls.ioSetup(1);
            if (id < 0) {
                FileIo.close(fd);
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
                if (AioCalls.ioSubmit(id, 1, ptr.address()) != 1) {
                    return false; // -EINVAL: opcode unknown to this kernel
                }
                return AioCalls.ioGetevents(id, 1, 1, ev.address(), ts.address()) == 1
                        && ev.get(ValueLayout.JAVA_LONG, IoEventLayout.RES) == 0;
            } finally {
                AioCalls.ioDestroy(id);
                FileIo.close(fd);
            }
        }
    }
}
