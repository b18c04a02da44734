package io.vblk.drivers.rbd;

import io.vblk.aio.AioContext;
import io.vblk.aio.Bh;
import io.vblk.aio.DeferCall;
import io.vblk.aio.Guard;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.ChannelBase;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReferenceArray;

/**
 * Home thread: the owning IoThread. No locking. librbd's callback threads touch only the result
 * and hand-over link of the requests they finish ({@link #onLibrbdCompletion}).
 *
 * <p>An {@link RbdDriver}'s submission path on one context. Each {@link BlockIo} takes a pooled
 * {@link RbdRequest}, gets an {@code rbd_completion_t} whose argument names this channel and the
 * request's slot, and goes to librbd as {@code rbd_aio_readv}/{@code rbd_aio_writev} with the
 * request's own iovecs (guest memory, never copied), {@code rbd_aio_flush}, {@code rbd_aio_discard}
 * or {@code rbd_aio_write_zeroes}.
 *
 * <p>Completions (seed 002): librbd runs the one process-wide callback on one of its own threads.
 * The callback reads the return value, releases the completion, pushes the request on this
 * channel's lock-free (Treiber) stack and schedules the channel's bottom half — a no-op while it is
 * already scheduled, so a batch of completions costs one loop wake-up (one eventfd write). The
 * bottom half runs on the home thread, takes the whole stack, and completes every request there
 * inside one defer-call section (one guest notification per queue for the batch). Nothing about a
 * request's completion runs on a librbd thread — unless the context's {@link Guard#HOME_THREAD} is
 * off (reproducers only: {@code vblk repro cross-thread-completion --mode rbd}), which processes it
 * on the librbd thread, as the seed's bug did.
 */
final class RbdChannel extends ChannelBase {
    /** Channels by id, for the callback's argument (high 32 bits: channel id, low 32 bits: slot). */
    private static final AtomicReferenceArray<RbdChannel> CHANNELS = new AtomicReferenceArray<>(4096);
    private static final Librbd.CompletionCallback CALLBACK = new Callback();
    private static final VarHandle DONE_HEAD;

    static {
        try {
            DONE_HEAD = MethodHandles.lookup().findVarHandle(RbdChannel.class, "doneHead", RbdRequest.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    /** The process-wide completion callback. Any thread (runs on librbd's threads). */
    private static final class Callback implements Librbd.CompletionCallback {
        @Override
        public void invoke(long completion, long arg) {
            onLibrbdCompletion(completion, arg);
        }
    }

    private final RbdDriver d;
    private final long image;
    private final long callbackAddress;
    private final int id;
    private final Arena arena = Arena.ofShared();
    /** Out-parameter of rbd_aio_create_completion. */
    private final MemorySegment completionOut;
    private final Bh doneBh;
    /** Requests by slot; replaced (grown) on the home thread only, read by the callback. */
    private volatile RbdRequest[] slots = new RbdRequest[16];
    private int allocated;
    private RbdRequest free;
    /** Finished requests, pushed by librbd threads, taken whole by {@link #handBack}. */
    @SuppressWarnings("unused") // through DONE_HEAD
    private volatile RbdRequest doneHead;
    /** Callbacks that ran, and the last thread that ran one: what the tests check. */
    private final AtomicLong callbacks = new AtomicLong();
    private volatile Thread lastCallbackThread;

    RbdChannel(AioContext ctx, RbdDriver d) {
        super(ctx, d);
        this.d = d;
        this.image = d.image();
        this.callbackAddress = Librbd.completionCallback(CALLBACK);
        this.completionOut = arena.allocate(ValueLayout.JAVA_LONG);
        this.doneBh = ctx.bh("rbd-done", this::handBack);
        this.id = register(this);
    }

    private static int register(RbdChannel ch) {
        for (int i = 0; i < CHANNELS.length(); i++) {
            if (CHANNELS.get(i) == null && CHANNELS.compareAndSet(i, null, ch)) {
                return i;
            }
        }
        throw new IllegalStateException("rbd: more than " + CHANNELS.length() + " channels open");
    }

    private RbdRequest take() {
        RbdRequest r = free;
        if (r != null) {
            free = r.nextFree;
            r.nextFree = null;
            return r;
        }
        RbdRequest[] s = slots;
        if (allocated == s.length) {
            RbdRequest[] grown = java.util.Arrays.copyOf(s, s.length * 2); // only while the pool grows
            slots = grown; // volatile: published before any callback for a new slot can run
            s = grown;
        }
        r = new RbdRequest(allocated);
        s[allocated++] = r;
        return r;
    }

    @Override
    protected void start(BlockIo io) {
        RbdRequest r = take();
        r.io = io;
        if ((io.op == BlockIo.READ || io.op == BlockIo.WRITE) && io.iov.totalLength() == 0) {
            finish(r, 0);
            return;
        }
        issue(r, io.op, io.op);
    }

    /** Sends one librbd operation for {@code r}; a refusal completes it at once (STYLE rule 11). */
    private void issue(RbdRequest r, int op, int phase) {
        r.phase = phase;
        BlockIo io = r.io;
        long arg = ((long) id << 32) | r.slot;
        int c = Librbd.rbdAioCreateCompletion(arg, callbackAddress, completionOut.address());
        if (c < 0) {
            finish(r, c);
            return;
        }
        long comp = completionOut.get(ValueLayout.JAVA_LONG, 0);
        long res = switch (op) {
            case BlockIo.READ -> Librbd.rbdAioReadv(image, io.iov.address(), io.iov.count(), io.offset, comp);
            case BlockIo.WRITE -> Librbd.rbdAioWritev(image, io.iov.address(), io.iov.count(), io.offset, comp);
            case BlockIo.FLUSH -> Librbd.rbdAioFlush(image, comp);
            case BlockIo.DISCARD -> Librbd.rbdAioDiscard(image, io.offset, io.length, comp);
            default -> Librbd.rbdAioWriteZeroes(image, io.offset, io.length, comp);
        };
        if (res < 0) {
            Librbd.rbdAioRelease(comp); // librbd did not take it: no callback will come
            finish(r, res);
        }
    }

    /**
     * The librbd callback: record, release, hand over. Runs on a librbd thread; allocation- and
     * lock-free (beyond JNA's own call frame).
     */
    private static void onLibrbdCompletion(long completion, long arg) {
        long ret = Librbd.rbdAioGetReturnValue(completion);
        Librbd.rbdAioRelease(completion);
        RbdChannel ch = CHANNELS.get((int) (arg >>> 32));
        if (ch == null) {
            return; // impossible while requests are in flight: a channel closes idle
        }
        ch.callbacks.incrementAndGet();
        ch.lastCallbackThread = Thread.currentThread();
        RbdRequest r = ch.slots[(int) arg];
        if (!ch.ctx.guard(Guard.HOME_THREAD)) {
            // Seed 002 with its guard off (reproducers only): the completion is processed where it
            // lands, on librbd's thread, while the home thread submits: both walk the free list,
            // the channel's in-flight count and the submitter's completion state.
            ch.completed(r, ret);
            return;
        }
        r.result = ret;
        RbdRequest top;
        do {
            top = (RbdRequest) DONE_HEAD.getVolatile(ch);
            r.nextDone = top;
        } while (!DONE_HEAD.compareAndSet(ch, top, r));
        // The push happens-before the bottom half runs: Bh.schedule() is a volatile read-modify-write
        // that the home thread's dispatch reads. Pairs with the getAndSet in handBack().
        ch.doneBh.schedule();
    }

    /** Bottom half on the home thread: completes every request librbd finished, oldest first, in one section. */
    private void handBack() {
        ctx.assertHome();
        DeferCall dc = ctx.deferCall();
        dc.begin();
        try {
            // Pairs with the CAS push in onLibrbdCompletion(): each result write comes before it.
            RbdRequest list = (RbdRequest) DONE_HEAD.getAndSet(this, (RbdRequest) null);
            RbdRequest fifo = null;
            while (list != null) {
                RbdRequest n = list.nextDone;
                list.nextDone = fifo;
                fifo = list;
                list = n;
            }
            while (fifo != null) {
                RbdRequest r = fifo;
                fifo = r.nextDone;
                r.nextDone = null;
                completed(r, r.result);
            }
        } finally {
            dc.end();
        }
    }

    private void completed(RbdRequest r, long res) {
        BlockIo io = r.io;
        if (res < 0) {
            d.noteError(r.phase & 0xff, io.offset, res);
            finish(r, res);
            return;
        }
        switch (r.phase) {
            case BlockIo.READ -> finish(r, io.iov.totalLength());
            case BlockIo.WRITE -> {
                if ((io.flags & BlockIo.FLAG_FUA) != 0) {
                    // forced unit access: durable before the guest hears of it
                    issue(r, BlockIo.FLUSH, BlockIo.FLUSH | FUA_FLUSH);
                } else {
                    finish(r, io.iov.totalLength());
                }
            }
            case BlockIo.FLUSH | FUA_FLUSH -> finish(r, io.iov.totalLength());
            default -> finish(r, 0);
        }
    }

    /** Marks the flush that follows a FUA write. */
    private static final int FUA_FLUSH = 0x100;

    private void finish(RbdRequest r, long res) {
        BlockIo io = r.io;
        r.io = null;
        r.nextFree = free;
        free = r;
        complete(io, res);
    }

    /** Completion callbacks librbd ran for this channel. Any thread. */
    long callbacks() {
        return callbacks.get();
    }

    /** The thread that ran the latest callback. Any thread. */
    Thread lastCallbackThread() {
        return lastCallbackThread;
    }

    /** Request states made so far (the pool's high-water mark). */
    int allocatedRequests() {
        return allocated;
    }

    @Override
    protected void release() {
        CHANNELS.compareAndSet(id, this, null);
        doneBh.delete();
        arena.close();
    }
}
