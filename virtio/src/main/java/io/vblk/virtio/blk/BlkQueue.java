package io.vblk.virtio.blk;

import io.vblk.aio.AioContext;
import io.vblk.aio.Bh;
import io.vblk.aio.DeferCall;
import io.vblk.aio.FdHandler;
import io.vblk.aio.Guard;
import io.vblk.aio.PollHandler;
import io.vblk.aio.sys.EventFds;
import io.vblk.aio.sys.FileIo;
import io.vblk.virtio.memory.GuestMemoryFault;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.IoCompletion;
import io.vblk.irqfd.IrqfdNotifier;
import io.vblk.virtio.queue.QueueLayout;
import io.vblk.virtio.memory.DirtyLog;
import io.vblk.virtio.memory.GuestMemory;
import io.vblk.virtio.queue.DescriptorChain;
import io.vblk.virtio.queue.LittleEndian;
import io.vblk.virtio.queue.PackedQueue;
import io.vblk.virtio.queue.SplitQueue;
import io.vblk.virtio.queue.VirtQueue;

import java.lang.foreign.Arena;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;
import java.util.function.IntConsumer;

/**
 * Home thread: the queue's IoThread (from the device's {@code IoThreadMapping}). No locking.
 * The device's control methods reach it only through {@code ctx.runOn}.
 *
 * <p>One request queue of a virtio-blk device: kick handling, the pop → parse → submit pass,
 * merging, completion, and guest notification, on a split or packed ring alike ({@code VirtQueue}).
 *
 * <p>Request path: kick eventfd (paused while the device's node is drained) →
 * defer-call section begins → pop every available chain into a free slot → parse → READ/WRITE go
 * to a batch that is sorted and merged, others are submitted at once → section ends (the driver's
 * deferred {@code io_submit} runs; with {@code submit-batch} every that many READs/WRITEs, the pass
 * going on in a new section). Completion → status byte → used element → notify (deferred
 * to the end of the section the completion runs in, so one eventfd write per section).
 *
 * <p>Re-entry: a driver may complete inside {@code submit} (null driver, synchronous I/O). Then
 * completion runs inside the pass: it pushes the used element, frees the slot and asks for a
 * notification, but never pops; the pass goes on with its own cursors. When every slot is busy
 * the pass stops and the completion that frees one schedules {@link #resumeBh} — it never calls
 * back into the pass (seed 000's cycle cannot form here).
 *
 * <p>Drained sections (seed 003): while the device's block node is drained the queue takes no
 * guest request — its kick handler is paused and {@link #process} returns at once, whatever
 * called it (a poll, the resume bottom half, a start) — and the end re-runs the kick handler, which
 * re-reads the avail ring, so a kick that came meanwhile is not lost.
 */
final class BlkQueue implements IoCompletion {
    private final BlkDevice dev;
    final int index;
    final AioContext ctx;
    private final String name;
    private final ContextChannel channelHolder;
    private final SplitQueue split;
    private final PackedQueue packed;
    /** The ring the negotiated features chose at start (split or packed); the pass does not know which. */
    VirtQueue vq;
    final IrqfdNotifier notifier;
    final BlkQueueStats stats = new BlkQueueStats();
    /** werror / rerror: decides about failed requests, holds them while the device is stopped. */
    final QueueErrors errors;
    private final DescriptorChain chain = new DescriptorChain();
    private final Bh resumeBh;
    private BlkRequest dispatching; // in parse/dispatch: dropped if guest memory faults there
    /** Finishes a stop that waited for requests in flight, after the last one's completion section. */
    private final Bh stopBh;
    private final FdHandler.Callback kickCallback = this::onKick;
    private final BooleanSupplier pollCallback = this::onPoll;
    private final Runnable pollBeginCallback = this::onPollBegin;
    private final Runnable pollEndCallback = this::onPollEnd;
    /** READs and WRITEs gathered before the pass submits them and ends its section; 0: whole pass. */
    private final int submitBatch;
    private final int iovCapacity;
    private Arena arena;
    private BlkRequest[] slots = new BlkRequest[0];
    private int[] free = new int[0];
    private int freeTop;
    private final MergeBatch batch;
    private final Consumer<BlkRequest> submitFn = this::submit;
    /** Records the latencies of a completion section at its end; one stable object per queue. */
    private final DoneLatencies done;
    /** The node's channel for this context; moved by a pivot ({@link #channelMoved}). */
    private BlockChannel channel;
    private BlkRequestParser parser;
    private GuestMemory memory;
    private DirtyLog dirty; // set while the front-end migrates the guest (vhost-user LOG_ALL)
    private FdHandler kick;
    private PollHandler poller;
    private int startAvailIdx;
    private boolean running;
    private boolean starved;
    /** Busy-polled (pollBegin..pollEnd): kicks stay off after a pass, the next poll looks anyway. */
    private boolean polling;
    private IntConsumer stopReport;
    /** Open drained sections of the device's node, as the device handed them over. */
    private int drainDepth;
    /** The queue takes no request: set by the outermost drained section unless the guard is off. */
    private boolean quiesced;

    BlkQueue(BlkDevice dev, int index, AioContext ctx, ContextChannel channelHolder, BlkDeviceConfig cfg) {
        this.dev = dev;
        this.index = index;
        this.ctx = ctx;
        this.name = dev.name() + ".q" + index;
        this.channelHolder = channelHolder;
        this.split = new SplitQueue(name);
        this.packed = new PackedQueue(name);
        this.vq = split;
        this.done = new DoneLatencies(ctx, stats);
        this.notifier = new IrqfdNotifier(ctx, name, -1, () -> vq.needsNotify());
        this.resumeBh = ctx.bh(name + ".resume", this::processGuarded);
        this.stopBh = ctx.bh(name + ".stop", this::finishStop);
        this.batch = new MergeBatch(cfg.merge, cfg.maxMergeBytes, stats);
        this.submitBatch = cfg.submitBatch;
        this.iovCapacity = cfg.effectiveSegMax();
        this.errors = new QueueErrors(this, dev.errors, cfg);
    }

    /** What a start hands over from the control context. */
    record Start(QueueLayout layout, GuestMemory memory, long features, int kickFd, int callFd,
                 BlkRequestParser parser) {
    }

    // ---------------------------------------------------------------- control (handed over)

    /** Attaches the rings and starts taking requests. The memory reference is ours until stop. */
    void start(Start s) {
        ctx.assertHome();
        if (channel == null) {
            channel = channelHolder.get();
        }
        ensureSlots(s.layout().size());
        this.memory = s.memory();
        this.parser = s.parser();
        this.startAvailIdx = s.layout().nextAvailIdx();
        this.vq = VirtQueue.forFeatures(s.features(), split, packed);
        this.dirty = s.layout().dirty();
        this.stopReport = null;
        errors.onStart(dev.ioErrorStopped());
        notifier.setCallFd(s.callFd());
        if (s.kickFd() >= 0) {
            kick = addKick(s.kickFd());
        }
        if (!vq.start(s.layout(), s.memory(), s.features(), dev.maxQueueSize())) {
            dev.queueBroken(this, vq.brokenReason());
            return;
        }
        running = true;
        poller = ctx.addPollHandler(name + ".poll", pollCallback, pollBeginCallback, pollEndCallback);
        // Buffers may be waiting already (a frontend resuming a ring) and no kick will come for them.
        process();
    }

    /** Stops taking requests; reports the next avail index once nothing is in flight. */
    void stop(IntConsumer report) {
        ctx.assertHome();
        running = false;
        starved = false;
        polling = false; // the loop runs no pollEnd for a removed handler
        resumeBh.cancel();
        if (kick != null) {
            kick.remove();
            kick = null;
        }
        if (poller != null) {
            poller.remove();
            poller = null;
        }
        errors.onQueueStop(); // held requests go to the driver once more, so the stop can finish
        stopReport = report;
        if (stats.inFlight == 0) {
            finishStop();
        }
    }

    private void finishStop() {
        IntConsumer report = stopReport;
        stopReport = null;
        int next = vq.started() ? vq.nextAvailIdx() : startAvailIdx;
        vq.stop();
        notifier.setCallFd(-1);
        if (memory != null) {
            memory.release();
            memory = null;
        }
        report.accept(next);
    }

    /** Replaces the call eventfd of a running queue and closes the old one. */
    void replaceCallFd(int fd, int old) {
        ctx.assertHome();
        notifier.setCallFd(fd); // the next send uses it; the next start sets it again anyway
        if (old >= 0) {
            FileIo.close(old);
        }
    }

    /** Replaces the kick eventfd of a running queue and closes the old one. */
    void replaceKickFd(int fd, int old) {
        ctx.assertHome();
        if (kick != null) {
            kick.remove();
            kick = fd >= 0 ? addKick(fd) : null;
        }
        if (old >= 0) {
            FileIo.close(old);
        }
        if (running) {
            process();
        }
    }

    private FdHandler addKick(int fd) {
        FdHandler h = ctx.addFdHandler(name + ".kick", fd, kickCallback);
        if (quiesced) {
            h.drainedBegin();
        }
        return h;
    }

    // ---------------------------------------------------------------- drained sections

    /**
     * The device's node began a drained section (handed over by {@link BlkDevice}): take no guest
     * request from now on. Requests in flight complete normally; the node waits for them. With
     * {@link Guard#DRAIN_STOPS_DEVICES} off (reproducers only) the queue goes on taking requests.
     */
    void drainedBegin() {
        ctx.assertHome();
        if (drainDepth++ == 0 && ctx.guard(Guard.DRAIN_STOPS_DEVICES)) {
            quiesced = true;
            if (kick != null) {
                kick.drainedBegin();
            }
        }
    }

    /** The node was resized to {@code sectors}; runs before the resize's {@link #drainedEnd} (runOn order). */
    void resized(long sectors) {
        ctx.assertHome();
        if (parser != null) {
            parser.resized(sectors);
        }
    }

    /** The section ended: take requests again, re-checking the ring as if kicked (seed 003). */
    void drainedEnd() {
        ctx.assertHome();
        if (drainDepth == 0) {
            throw new IllegalStateException("queue " + name + ": drainedEnd without drainedBegin");
        }
        if (--drainDepth > 0 || !quiesced) {
            return;
        }
        quiesced = false;
        if (kick != null) {
            kick.drainedEnd(); // runs onKick: the re-check
        } else {
            process();
        }
    }

    /** The device moved to another node: submit to {@code ch} (null: none opened yet) from now on. */
    void channelMoved(BlockChannel ch) {
        ctx.assertHome();
        channel = ch != null ? ch : channel;
    }

    /** Releases what the queue holds on its thread (device close; the queue is stopped). */
    void close() {
        ctx.assertHome();
        resumeBh.delete();
        stopBh.delete();
        if (arena != null) {
            arena.close();
            arena = null;
        }
    }

    boolean running() {
        return running;
    }

    /** After a protocol violation: take no more requests (the kick handler stays until stop). */
    void stopTaking() {
        running = false;
        starved = false;
    }

    // ---------------------------------------------------------------- the pass

    private void onKick(int fd) {
        stats.kicks++;
        EventFds.eventfdRead(fd); // drain (level-triggered); -EAGAIN after a drained-section re-check
        processGuarded();
    }

    /** A pass; a guest memory fault in it drops the chain in hand and puts the device in NEEDS_RESET. */
    private void processGuarded() {
        try {
            process();
        } catch (InternalError e) {
            dev.queueBroken(this, GuestMemoryFault.reason("queue " + name, GuestMemoryFault.check(e)));
            if (dispatching != null) {
                release(dispatching);
            }
            dispatching = null;
            flushBatch(); // already popped: they complete, unpublished
        }
    }

    /** The loop starts busy-polling (QEMU's ..._aio_poll_begin): no kicks wanted meanwhile. */
    private void onPollBegin() {
        polling = true;
        if (running && !quiesced) {
            vq.disableNotification();
        }
    }

    /**
     * The loop is about to block (QEMU's ..._aio_poll_end): kicks back on; the loop's last poll,
     * right after, is the re-check that takes a buffer added while kicks were off.
     */
    private void onPollEnd() {
        polling = false;
        if (vq.notificationsDisabled()) {
            vq.enableNotification();
        }
    }

    private boolean onPoll() {
        if (!running || quiesced || errors.stopped() || !vq.hasAvailable()) {
            reportIfBroken();
            return false;
        }
        processGuarded();
        return true;
    }

    /** A ring check outside pop (enable's re-read, a poll) may find the driver broke a rule. */
    private void reportIfBroken() {
        if (running && vq.broken()) {
            dev.queueBroken(this, vq.brokenReason());
        }
    }

    /** One pass: pop and dispatch every available chain with kicks off, then (unless polling) re-check. */
    void process() {
        ctx.assertHome();
        if (!running || dev.needsReset()) {
            return;
        }
        if (quiesced) {
            // Seed 003: a drained section takes no guest requests, whatever scheduled us (a
            // resume bottom half, a poll). Its end re-runs the kick handler, which comes back here.
            return;
        }
        if (errors.stopped()) {
            return; // werror / rerror = stop: nothing is popped until the device is resumed
        }
        stats.passes++;
        DeferCall dc = ctx.deferCall();
        dc.begin();
        try {
            errors.resubmitHeld(); // a resumed device first re-runs what it held, in order
            // QEMU virtio_blk_handle_vq: kicks off while popping, back on with a re-check before
            // leaving; while the loop polls, they stay off until onPollEnd.
            do {
                vq.disableNotification();
                popAll();
                if (!running || starved || errors.stopped()) {
                    break;
                }
            } while (!polling && vq.enableNotification());
            reportIfBroken();
        } finally {
            dc.end();
        }
    }

    private void popAll() {
        long passStart = 0;
        boolean stamped = false;
        while (freeTop > 0) {
            if (!vq.pop(chain)) {
                if (vq.broken()) {
                    flushBatch();
                    dev.queueBroken(this, vq.brokenReason());
                    return;
                }
                break;
            }
            BlkRequest r = slots[free[--freeTop]];
            if (!stamped) {
                // One clock read per pass, not per request: every chain popped here was waiting
                // when the pass began. The depth includes the chain just popped.
                stamped = true;
                passStart = ctx.now();
                stats.depthAtPop.record(vq.availableSeen() + 1);
            }
            r.popNanos = passStart;
            stats.startedDrained += drainDepth > 0 ? 1 : 0; // seed 003's leak: stays 0 with the guard on
            if (++stats.inFlight > stats.maxInFlight) {
                stats.maxInFlight = stats.inFlight;
            }
            dispatching = r;
            dispatch(r);
            dispatching = null;
            if (!running || errors.stopped()) {
                flushBatch();
                return;
            }
            if (submitBatch > 0 && batch.size() == submitBatch) {
                flushBatch();
                // The section's end runs the deferred submit and notification; the pass goes on.
                DeferCall dc = ctx.deferCall();
                try {
                    dc.end();
                } finally {
                    dc.begin();
                }
            }
        }
        if (freeTop == 0 && vq.hasAvailable()) {
            // The guest has more chains than we have free slots (possible only if it re-posts heads
            // that are in flight): the completion that frees a slot resumes through resumeBh.
            starved = true;
        }
        flushBatch();
    }

    private void dispatch(BlkRequest r) {
        switch (parser.parse(chain, r, dev.writeThrough())) {
            case BlkRequestParser.SUBMIT_RW -> {
                batch.add(r);
            }
            case BlkRequestParser.SUBMIT_OTHER -> {
                flushBatch(); // keep submission order around flushes and discards
                submit(r);
            }
            case BlkRequestParser.COMPLETE -> {
                finish(r, r.status, false);
                notifier.notifyGuest();
            }
            default -> {
                // No status byte or no header: NEEDS_RESET, the chain is not given back (virtio_error).
                release(r);
                BlkRequestParser.BlkRequestViolation v = parser.violation;
                dev.queueBroken(this, "queue " + name + ": " + v.kind + " (virtio 1.2 " + v.kind.section() + "): "
                        + v.kind.description() + ": head " + v.head);
            }
        }
    }

    /** Submits the batched READs and WRITEs, merging neighbours (QEMU virtio_blk_submit_multireq). */
    private void flushBatch() {
        batch.flush(submitFn);
    }

    /** The device resumed after an I/O error stop (handed over by the device). */
    void resumeAfterError() {
        ctx.assertHome();
        errors.resume();
        process();
    }

    void submit(BlkRequest r) {
        if (r.expected >= 0) {
            r.expected = r.io.iov.totalLength();
        }
        stats.driverSubmits++;
        channel.submit(r.io); // may complete right here (see the class comment on re-entry)
    }

    // ---------------------------------------------------------------- completion

    @Override
    public void ioCompleted(BlockIo io, long result) {
        ctx.assertHome();
        BlkRequest r = (BlkRequest) io.owner;
        if (result >= 0 && parser.nextSegment(r)) {
            // A multi-segment DISCARD / WRITE_ZEROES runs its segments one after the other. With a
            // synchronous driver this recurses once per segment: at most max_*_seg deep.
            submit(r);
            return;
        }
        int status = BlkStatus.fromResult(result, r.expected);
        if (status == BlkStatus.IOERR && (status = errors.onFailure(r, result)) < 0) {
            return; // held until the device resumes (werror / rerror = stop)
        }
        for (BlkRequest m = r; m != null; ) {
            BlkRequest next = m.mergeNext;
            m.mergeNext = null;
            finish(m, status, true);
            m = next;
        }
        notifier.notifyGuest();
    }

    /** Writes the status, returns the chain to the guest and frees the slot. */
    private void finish(BlkRequest r, int status, boolean fromDriver) {
        long used = status == BlkStatus.OK && r.type == BlkRequestType.IN
                ? r.dataBytes + BlkRequestHeaderLayout.STATUS_BYTES : r.usedLen;
        if (!dev.needsReset()) { // QEMU virtqueue_flush: a broken device publishes nothing more
            try {
                r.statusMem.set(LittleEndian.U8, r.statusOff, (byte) status);
                if (dirty != null) {
                    r.logWrites(dirty); // after the writes, before the used element (which the ring logs)
                }
                vq.push(r.head, used);
            } catch (InternalError e) {
                dev.queueBroken(this, GuestMemoryFault.reason("queue " + name, GuestMemoryFault.check(e)));
            }
        }
        stats.count(r.type, status, fromDriver, r.dataBytes);
        // Latency recorded at the section's end, one clock read for the section (DoneLatencies).
        done.note(BlkQueueStats.opIndex(r.type), r.popNanos);
        release(r);
    }

    private void release(BlkRequest r) {
        r.statusMem = null;
        free[freeTop++] = r.slot;
        stats.inFlight--;
        if (stopReport != null && stats.inFlight == 0) {
            // The last request of a stopping queue, completed from the driver's handler after the
            // stop. Finish on a bottom half once that handler's section ended: its deferred
            // notification must still see the started ring and call eventfd (QEMU drains with
            // notifications on before it stops), and the ring's memory goes only after its last read.
            stopBh.schedule();
        } else if (starved) {
            starved = false;
            resumeBh.schedule();
        }
    }

    // ---------------------------------------------------------------- slots

    /** Preallocates one slot per ring entry (control path: at start, only when the ring grew). */
    private void ensureSlots(int size) {
        if (slots.length >= size) {
            freeTop = 0;
            for (int i = slots.length - 1; i >= 0; i--) {
                free[freeTop++] = i;
            }
            return;
        }
        if (arena != null) {
            arena.close();
        }
        arena = Arena.ofShared();
        slots = new BlkRequest[size];
        free = new int[size];
        done.resize(size);
        freeTop = 0;
        for (int i = size - 1; i >= 0; i--) {
            BlockIo io = new BlockIo(arena, iovCapacity);
            io.owner = slots[i] = new BlkRequest(i, io);
            io.tag = i;
            free[freeTop++] = i;
        }
        batch.resize(slots);
    }

    @Override
    public String toString() {
        return "BlkQueue[" + name + " on " + ctx.name() + " " + vq + "]";
    }
}
