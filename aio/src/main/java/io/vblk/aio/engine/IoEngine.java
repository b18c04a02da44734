package io.vblk.aio.engine;

import io.vblk.aio.AioContext;

/**
 * Home thread: the owning IoThread of {@link #context()}. No locking; every entry point asserts it.
 *
 * <p>The one seam a driver channel submits to: an I/O engine of one {@link AioContext}. A channel
 * takes a reference when it opens (for example {@code LinuxAio.of(ctx)} for aio=native,
 * {@code WorkerPool.of(ctx)} for aio=threads; the context's engine of a kind is shared and
 * refcounted) and drops it with {@link #release()} when it closes.
 *
 * <p>Every engine is a {@link SubmissionQueue} in front of an {@link EngineBackend}: the queue does
 * what all engines share (deferred, batched submission at the end of the defer-call section, the
 * batch limit, the blocked queue on EAGAIN, "fail the first, retry the rest", the seed-000 depth
 * cap, the completion pass); the backend only talks to the kernel or its workers.
 */
public interface IoEngine {
    AioContext context();

    /** The backend's name: "linux-aio", "threads", "null-sync", "null-async", "io_uring", ... */
    String kind();

    /**
     * Queues {@code req}; it goes down with the rest of this defer-call section's requests at the
     * section's end, or at once when a batch is full ({@code devMaxBatch}: the driver's limit, 0 for
     * none; the context's {@code aio-max-batch} applies too). Completes exactly once through the
     * request's completion, possibly before this returns. Home thread.
     */
    void submit(IoRequest req, int devMaxBatch);

    /** Requests handed to the backend and not yet completed. */
    int inFlight();

    /** Requests queued and not yet handed to the backend. */
    int queued();

    /**
     * Drops a reference; the last one closes the backend. Nothing may be queued or in flight then.
     * Home thread.
     */
    void release();
}
