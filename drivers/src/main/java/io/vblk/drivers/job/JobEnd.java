package io.vblk.drivers.job;

import java.util.concurrent.CompletableFuture;

/**
 * Home thread: the jobs' (the main loop) calls it; its futures are read from any thread.
 *
 * <p>A listener for callers that wait for one job from another thread (a reproducer, a test, a
 * script): {@link #ready()} completes at BLOCK_JOB_READY, {@link #ended()} at BLOCK_JOB_COMPLETED
 * with {@code "completed"} or the error, or at BLOCK_JOB_CANCELLED with {@code "cancelled"}.
 */
public final class JobEnd implements JobListener {
    /** What {@link #ended()} holds for a job that completed without error. */
    public static final String COMPLETED = "completed";
    /** What {@link #ended()} holds for a cancelled job. */
    public static final String CANCELLED = "cancelled";

    private final String id;
    private final CompletableFuture<Void> ready = new CompletableFuture<>();
    private final CompletableFuture<String> ended = new CompletableFuture<>();

    /** Hears the job {@code id}; null hears whichever job the {@link Jobs} runs. */
    public JobEnd(String id) {
        this.id = id;
    }

    /** Completes when the job is ready. */
    public CompletableFuture<Void> ready() {
        return ready;
    }

    /** Completes when the job ends: {@link #COMPLETED}, its error, or {@link #CANCELLED}. */
    public CompletableFuture<String> ended() {
        return ended;
    }

    private boolean mine(Job j) {
        return id == null || id.equals(j.id());
    }

    @Override
    public void ready(Job j) {
        if (mine(j)) {
            ready.complete(null);
        }
    }

    @Override
    public void completed(Job j, String error) {
        if (mine(j)) {
            ended.complete(error == null ? COMPLETED : error);
        }
    }

    @Override
    public void cancelled(Job j) {
        if (mine(j)) {
            ended.complete(CANCELLED);
        }
    }
}
