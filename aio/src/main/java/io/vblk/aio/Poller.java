package io.vblk.aio;

import java.util.Arrays;

/**
 * Home thread: the owning context's. No locking.
 *
 * <p>The adaptive busy polling of one {@link AioContext}, as QEMU's {@code util/aio-posix.c}
 * ({@code try_poll_mode}, {@code run_poll_handlers}, {@code poll_set_started} and the
 * {@code poll_ns} adjustment in {@code aio_poll}):
 * <pre>
 *   idle --window opens--> started: pollBegin on every handler, spin up to windowNs
 *   started --a handler finds work--> started (no pollEnd: the next window continues polling)
 *   started --window ends empty, loop is about to block--> idle: pollEnd on every begun handler,
 *            then one last poll of every handler; work found there means "do not block"
 * </pre>
 * The window ({@link #windowNanos()}) adapts to how long the loop had to wait (QEMU's
 * {@code block_ns}, measured from the window's start to the wake-up): a wait that fits the window
 * changes nothing; one longer than {@code poll-max-ns} shrinks it by {@code poll-shrink} (0: back to
 * 0, QEMU's default); one in between grows it by {@code poll-grow} (0: 2), starting at 4 us. A wait
 * that slept in the kernel shrinks it only beyond twice {@code poll-max-ns} ({@link #adjust(long, boolean)}).
 * Unlike QEMU, a window shrunk below that start value is switched off, since a shorter spin costs
 * more clock reads than the system call it saves.
 */
final class Poller {
    /** First busy-poll window once polling starts to pay off (QEMU: "start polling at 4 microseconds"). */
    static final long POLL_START_NS = 4_000;
    private static final PollHandler[] NONE = new PollHandler[0];

    private final AioContext ctx;
    private AioOptions options;
    /** Copied on add and remove, so a callback may change the set while a pass walks it. */
    private PollHandler[] handlers = NONE;
    private long windowNs;
    /** Between the first window after a block and the {@link #end()} before the next block. */
    private boolean started;
    private long hits;
    private long misses;
    private long windows;
    private long spinNanos;

    Poller(AioContext ctx, AioOptions options) {
        this.ctx = ctx;
        this.options = options;
    }

    /** New knobs: the window starts again from nothing, as QEMU's aio_context_set_poll_params. */
    void setOptions(AioOptions o) {
        options = o;
        windowNs = 0;
    }

    void add(PollHandler p) {
        PollHandler[] n = Arrays.copyOf(handlers, handlers.length + 1);
        n[n.length - 1] = p;
        handlers = n;
    }

    /**
     * Drops {@code p}; if polling is started and {@code p} began it, its {@code pollEnd} runs first,
     * so begin and end stay paired (a removed virtqueue gets its notifications back on). QEMU leaves
     * this to the handler's re-attach; pairing here means no owner has to remember it.
     */
    void remove(PollHandler p) {
        int i = Arrays.asList(handlers).indexOf(p);
        if (i < 0) {
            return;
        }
        PollHandler[] n = new PollHandler[handlers.length - 1];
        System.arraycopy(handlers, 0, n, 0, i);
        System.arraycopy(handlers, i + 1, n, i, n.length - i);
        handlers = n;
        if (p.begun) {
            p.begun = false;
            if (p.pollEnd != null) {
                p.pollEnd.run();
            }
        }
    }

    /** Whether a busy-poll window may open now: handlers exist, polling is on, the window is open. */
    boolean mayPoll() {
        return windowNs > 0 && handlers.length > 0 && options.pollMaxNs() > 0;
    }

    boolean started() {
        return started;
    }

    /**
     * One busy-poll window of {@link #windowNanos()}: starts polling if it is not (pollBegin on each
     * handler), then polls every handler in turn until one finds work, a bottom half is scheduled,
     * the next timer is due or the window has passed. True when a handler found work.
     */
    boolean window() {
        long start = System.nanoTime();
        long end = start + windowNs;
        windows++;
        started = true;
        for (PollHandler p : handlers) {
            // Once per started period; a handler added while started begins in its first window.
            if (!p.begun) {
                p.begun = true;
                if (p.pollBegin != null) {
                    p.pollBegin.run();
                }
            }
        }
        Timer next = ctx.timers().peek();
        try {
            do {
                PollHandler[] hs = handlers; // re-read: a poll callback may have removed one
                for (PollHandler p : hs) {
                    if (!p.removed && p.poll.getAsBoolean()) {
                        hits++;
                        return true;
                    }
                }
                if (ctx.hasPendingBhs() || next != null && next.deadline - ctx.clock().nanoTime() <= 0) {
                    return false;
                }
                Thread.onSpinWait();
            } while (System.nanoTime() - end < 0);
            misses++;
            return false;
        } finally {
            spinNanos += System.nanoTime() - start;
        }
    }

    /**
     * Ends polling before the loop blocks (QEMU's {@code poll_set_started(ctx, false)}): every
     * handler that began re-enables its notifications ({@code pollEnd}), then every handler is
     * polled one last time, so work that arrived after its last poll but before the re-enable (and
     * so without a notification) is taken now instead of waiting for a kick that never comes. True
     * when that last poll found work: the loop must not block. Nothing to do when not started.
     */
    boolean end() {
        if (!started) {
            return false;
        }
        started = false;
        PollHandler[] hs = handlers;
        for (PollHandler p : hs) {
            if (p.begun) {
                p.begun = false;
                if (p.pollEnd != null) {
                    p.pollEnd.run();
                }
            }
        }
        boolean progress = false;
        for (PollHandler p : handlers) {
            // "Poll one last time in case ->io_poll_end() raced with the event" (aio-posix.c).
            if (!p.removed && p.poll.getAsBoolean()) {
                hits++;
                progress = true;
            }
        }
        return progress;
    }

    /**
     * QEMU's adjustment of {@code poll_ns} after an iteration that waited: {@code blockNs} runs from
     * the start of the busy-poll window (or of the wait, if none opened) to the wake-up.
     * {@code slept}: the loop blocked in the kernel, so {@code blockNs} also holds the thread's own
     * wake-up, tens of microseconds in a VM. Such a wait shrinks the window only beyond twice
     * {@code poll-max-ns}: QEMU's rule counts that wake-up against the window, and a loop that
     * sleeps once then never polls again (the guest kicks every batch).
     */
    void adjust(long blockNs, boolean slept) {
        long max = options.pollMaxNs();
        if (max == 0 || handlers.length == 0 || blockNs <= windowNs) {
            return; // polling off, or the sweet spot: the window caught it
        }
        if (blockNs > (slept ? 2 * max : max)) {
            // We would have to poll for too long: poll less.
            windowNs = options.pollShrink() == 0 ? 0 : windowNs / options.pollShrink();
            if (windowNs < POLL_START_NS) {
                windowNs = 0;
            }
        } else if (windowNs < max) {
            // Room to grow: a longer window would have caught this event without a system call.
            windowNs = windowNs == 0 ? POLL_START_NS : Math.min(max, windowNs * options.growFactor());
        }
    }

    long windowNanos() {
        return windowNs;
    }

    /** Work found by a poll handler (in a window or in the last poll before a block). */
    long hits() {
        return hits;
    }

    /** Windows that spun to their end without finding work (the loop then blocked). */
    long misses() {
        return misses;
    }

    long windows() {
        return windows;
    }

    long spinNanos() {
        return spinNanos;
    }

    int handlerCount() {
        return handlers.length;
    }
}
