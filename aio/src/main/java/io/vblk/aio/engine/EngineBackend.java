package io.vblk.aio.engine;

/**
 * Home thread: the owning IoThread of the {@link SubmissionQueue} it is attached to. No locking:
 * the queue calls every method here on that thread (a backend with worker threads hands results
 * back to it itself).
 *
 * <p>The engine SPI: what a kernel interface (or a worker pool, or the null device) implements to
 * sit behind the one {@link SubmissionQueue}. The queue owns the request lists, batching, the
 * blocked state, error handling and the seed-000 guard; a backend only moves requests to its
 * kernel and back. Adding an engine (io_uring, say) is: implement this interface, give it a
 * static {@code of(ctx)} that returns {@code SubmissionQueue.shared(ctx, KEY, c -> new MyBackend(c))}
 * (or use {@code new SubmissionQueue(ctx, backend)} for a private one), call the {@link Queue}
 * methods as described below, and let the file driver's engine choice
 * ({@code io.vblk.drivers.file.EngineChoice}) return it for its {@link AioMode}. The queue is not
 * changed.
 *
 * <h2>Contract</h2>
 * <ol>
 *   <li><b>Attach.</b> {@link #attach(Queue)} is called once from the queue's constructor. Keep the
 *       {@link Queue}; it is how completions come back.</li>
 *   <li><b>Submit.</b> {@link #submit(IoRequest, int)} gets the first {@code n} queued requests
 *       (walk them with {@link IoRequest#nextQueued()}; never change that link). {@code n} never
 *       exceeds {@link #capacity()} minus the requests in flight. Return how many the backend
 *       took, counted from the front (0..n; the queue keeps the rest queued and offers them again),
 *       or a negative errno when it took none: {@code -EAGAIN} means "no room now" (the queue
 *       blocks until a completion frees room; 0 means the same), any other value is the error of
 *       the <em>first</em> request, which the queue fails, retrying the rest at once (QEMU's
 *       {@code ioq_submit}: "fail the first, retry the rest"). Translate the kernel's other "no room"
 *       answers to -EAGAIN (io_uring_enter's -EBUSY when the completion queue is full). A request
 *       the backend took is in flight until it is handed back in {@link #reap}; a backend may
 *       resubmit it internally meanwhile (the rest of a short read, a retry after -EAGAIN in its
 *       completion) without the queue knowing.</li>
 *   <li><b>Complete inline if you like.</b> A backend may finish requests during
 *       {@link #submit} (io_submit on the page cache, io_uring_enter with completions ready, the
 *       synchronous null device). It must <em>not</em> call their completions there: it keeps them
 *       and hands them back from {@link #reap}, which the queue calls right after a submit that
 *       left requests in flight. That pass runs inside the seed-000 depth guard, so the submit →
 *       complete → callback submits → section end → submit cycle is capped for every backend.</li>
 *   <li><b>Reap.</b> {@link #reap(Queue)} hands every finished request to
 *       {@link Queue#completed(IoRequest, long)}, one at a time, and returns when nothing more is
 *       finished. The queue calls it inside a defer-call section. A completion callback may run a
 *       nested event loop that reaps again: keep the cursor in the backend (not in a local
 *       variable) and advance it <em>before</em> calling {@code completed}, so the nested pass
 *       continues after the entry the outer one is handling and the outer one continues after
 *       whatever the nested one took.</li>
 *   <li><b>Completion events.</b> When the kernel signals completions (an eventfd handler, a
 *       worker's bottom half), call {@link Queue#completionEvent()} on the home thread: it reaps
 *       and resubmits what was blocked. Register such handlers as non-external so completions keep
 *       flowing while the context is drained.</li>
 *   <li><b>Unsupported operations.</b> {@link #supports(int)} false for an op makes the queue send
 *       such requests to the engine {@link #openFallback()} returns (taken once, released with the
 *       queue).</li>
 *   <li><b>Close.</b> {@link #close()} runs once, with nothing queued or in flight.</li>
 * </ol>
 */
public interface EngineBackend {
    /** What the backend calls back into: the queue it is attached to. Home thread. */
    interface Queue {
        /** Hands back one finished request, during {@link EngineBackend#reap}; runs its completion. */
        void completed(IoRequest req, long result);

        /** The backend's completion signal fired: reap, then submit what waits. Home thread. */
        void completionEvent();
    }

    /** Short name for logs and metrics tags: "linux-aio", "threads", "io_uring", ... */
    String kind();

    /** Called once by the queue's constructor. */
    void attach(Queue queue);

    /** Requests the backend can hold in flight at most (ring size, worker slots). */
    int capacity();

    /** Batch size when neither the context's aio-max-batch nor the driver says (QEMU: 32); asked once. */
    default int defaultMaxBatch() {
        return SubmissionQueue.DEFAULT_MAX_BATCH;
    }

    /**
     * Whether the backend runs {@code op} ({@link IoRequest#READV} ...); see {@link #openFallback()}.
     * Asked once per op when the queue is made: the answer must not change.
     */
    default boolean supports(int op) {
        return true;
    }

    /** The engine for operations {@link #supports} refuses; taken once, released with the queue. */
    default IoEngine openFallback() {
        throw new UnsupportedOperationException(kind() + " has no fallback engine");
    }

    /**
     * Submits the first {@code n} (at least 1) queued requests starting at {@code first}.
     *
     * @return how many were taken from the front (0..n), or -errno when none was: -EAGAIN for
     *         "no room now", any other error belongs to {@code first}
     */
    int submit(IoRequest first, int n);

    /** Hands every finished request to {@code queue.completed}, cursor kept in the backend. */
    void reap(Queue queue);

    /** Frees the backend's resources; nothing is queued or in flight. */
    void close();
}
