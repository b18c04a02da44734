package io.vblk.drivers.job;

import io.vblk.aio.AioContext;
import io.vblk.drivers.node.BlockNode;

import java.util.List;
import java.util.function.Consumer;

/**
 * Home thread: the main loop (the {@link Jobs} registry's context). No locking.
 *
 * <p>A long-running block operation, as QEMU's {@code Job} (job.c) without coroutines: the work
 * is a state machine on the main loop that issues I/O from completions and timers, never a loop
 * that sleeps. This class keeps the status ({@link JobStatus}, QEMU's transition table), accepts
 * the user's verbs ({@link JobVerb}, QEMU's verb table and messages), and runs QEMU's ending:
 *
 * <pre>
 *   work ends, no error      → waiting → pending [auto-finalize or job-finalize] → prepare
 *                              → commit → clean → BLOCK_JOB_COMPLETED → concluded [auto-dismiss or job-dismiss] → null
 *   work ends with an error,
 *   or force-cancelled       → aborting → abort → clean → BLOCK_JOB_COMPLETED(error) / BLOCK_JOB_CANCELLED
 *                              → concluded → null
 * </pre>
 *
 * A subclass starts its work in {@link #run}, reports {@link #transitionToReady} and ends it with
 * {@link #runFinished}; it honours {@link #paused()} and {@link #cancelRequested()} at its own pause
 * points (before issuing more work).
 */
public abstract class Job {
    /** QEMU's strerror(ECANCELED), the error of a force-cancelled job. */
    public static final String CANCELED = "Operation canceled";

    protected final AioContext home;
    private final Jobs jobs;
    private final String id;
    private final boolean autoFinalize;
    private final boolean autoDismiss;
    private JobStatus status = JobStatus.UNDEFINED;
    private int pauseCount;
    private boolean userPaused;
    private boolean cancelled;
    private boolean forceCancel;
    private boolean runEnded;
    private boolean finalizing;
    private String error;
    private long speed;
    /** Bytes of work done: QEMU's {@code current-progress}. */
    protected long progress;

    protected Job(Jobs jobs, String id, boolean autoFinalize, boolean autoDismiss, long speed) {
        this.jobs = jobs;
        this.home = jobs.home();
        this.id = id;
        this.autoFinalize = autoFinalize;
        this.autoDismiss = autoDismiss;
        this.speed = checkSpeed(speed);
    }

    // ---------------------------------------------------------------- what a job is

    /** The QAPI {@code JobType} ("mirror", "backup"). */
    public abstract String type();

    /** The nodes the job uses (a node busy with one job takes no other). */
    public abstract List<BlockNode> nodes();

    /** Work known to be left, in the unit of {@link #currentProgress()}. */
    protected abstract long remaining();

    /** Starts the work; it ends with {@link #runFinished}. */
    protected abstract void run();

    /** Whether the job is doing something right now (I/O in flight). */
    public abstract boolean busy();

    // ---------------------------------------------------------------- hooks (defaults do nothing)

    /** Before the job is registered: open what it needs; a {@link JobException} refuses the job. */
    protected void setUp() {
    }

    /** The pause count went from 0 to 1: issue nothing new. */
    protected void pauseWork() {
    }

    /** The pause count went back to 0: go on. */
    protected void resumeWork() {
    }

    /** A cancel was requested; {@code force} is what {@link #cancelForce} decided. Stop at the next pause point. */
    protected void cancelWork() {
    }

    /** QEMU's {@code JobDriver.cancel}: whether a cancel with {@code force} really aborts (true by default). */
    protected boolean cancelForce(boolean force) {
        return true;
    }

    /** job-complete in READY: finish the work (a mirror: the last copy inside a drained section). */
    protected void complete() {
        throw new JobException("The active block job '" + id + "' cannot be completed");
    }

    /** The rate limit changed. */
    protected void speedChanged() {
    }

    /** Before commit: may fail ({@code done} gets an error message) and may be asynchronous. */
    protected void prepare(Consumer<String> done) {
        done.accept(null);
    }

    protected void commit() {
    }

    protected void abort() {
    }

    /** After commit or abort: release what the job holds. */
    protected void clean() {
    }

    // ---------------------------------------------------------------- state

    public final String id() {
        return id;
    }

    public final JobStatus status() {
        return status;
    }

    public final boolean autoFinalize() {
        return autoFinalize;
    }

    public final boolean autoDismiss() {
        return autoDismiss;
    }

    /** Bytes per second, 0 for no limit. */
    public final long speed() {
        return speed;
    }

    /** The error the job ended with, or null. */
    public final String error() {
        return error;
    }

    public final long currentProgress() {
        return progress;
    }

    public final long totalProgress() {
        return progress + remaining();
    }

    /** Paused by the user, by an error policy, or both. */
    public final boolean paused() {
        return pauseCount > 0;
    }

    /** QEMU's {@code job_cancel_requested}: any cancel, soft or forced. */
    public final boolean cancelRequested() {
        return cancelled;
    }

    /** QEMU's {@code job_is_cancelled}: a forced cancel (the job aborts). */
    public final boolean isCancelled() {
        return cancelled && forceCancel;
    }

    public final boolean isReady() {
        return status == JobStatus.READY || status == JobStatus.STANDBY;
    }

    private void transition(JobStatus to) {
        home.assertHome();
        if (!status.canBecome(to)) {
            throw new IllegalStateException("job " + id + ": no transition from " + status.qapi() + " to " + to.qapi());
        }
        status = to;
        jobs.fanout().statusChanged(this);
    }

    /** Refuses {@code verb} unless QEMU's table allows it in the current status. */
    public final void checkVerb(JobVerb verb) {
        home.assertHome();
        if (!verb.allowedIn(status)) {
            throw new JobException("Job '" + id + "' in state '" + status.qapi() + "' cannot accept command verb '"
                    + verb.qapi() + "'");
        }
    }

    // ---------------------------------------------------------------- lifecycle, from Jobs

    final void create() {
        transition(JobStatus.CREATED);
    }

    final void start() {
        transition(JobStatus.RUNNING);
        run();
    }

    // ---------------------------------------------------------------- for subclasses

    /** The work has converged (QEMU's {@code job_transition_to_ready}): ready, then BLOCK_JOB_READY. */
    protected final void transitionToReady() {
        transition(JobStatus.READY);
        jobs.fanout().ready(this);
    }

    /**
     * An error policy said stop: the job pauses as if the user had paused it and waits for
     * {@code job-resume} (QEMU's {@code block_job_error_action} with stop).
     */
    protected final void errorStop(boolean read) {
        jobs.fanout().ioError(this, read, OnError.Action.STOP);
        if (!userPaused) {
            userPaused = true;
            pause();
        }
    }

    /** Reports a failed request that the policy ignored or reported (BLOCK_JOB_ERROR). */
    protected final void errorEvent(boolean read, OnError.Action action) {
        jobs.fanout().ioError(this, read, action);
    }

    /**
     * The work ended ({@code error} null: it succeeded, or was soft-cancelled). QEMU's
     * {@code job_completed}: success goes to waiting and pending (and on, with auto-finalize);
     * an error or a forced cancel aborts.
     */
    protected final void runFinished(String err) {
        home.assertHome();
        if (runEnded) {
            throw new IllegalStateException("job " + id + " finished twice");
        }
        runEnded = true;
        if (err == null && isCancelled()) {
            err = CANCELED;
        }
        if (err != null) {
            abortNow(err);
            return;
        }
        transition(JobStatus.WAITING);
        transition(JobStatus.PENDING);
        jobs.fanout().pending(this);
        if (autoFinalize) {
            doFinalize();
        }
    }

    private void abortNow(String err) {
        error = err;
        transition(JobStatus.ABORTING);
        abort();
        finishSingle();
    }

    private void doFinalize() {
        finalizing = true;
        prepare(err -> {
            if (status != JobStatus.PENDING) {
                return; // aborted meanwhile
            }
            if (err != null) {
                abortNow(err);
                return;
            }
            commit();
            finishSingle();
        });
    }

    /** QEMU's {@code job_finalize_single}: clean, the end event, concluded, and null with auto-dismiss. */
    private void finishSingle() {
        clean();
        if (isCancelled()) {
            jobs.fanout().cancelled(this);
        } else {
            jobs.fanout().completed(this, error);
        }
        transition(JobStatus.CONCLUDED);
        if (autoDismiss) {
            dismissNow();
        }
    }

    private void dismissNow() {
        transition(JobStatus.NULL);
        jobs.removed(this);
    }

    /**
     * A node of the job is drained (QEMU's {@code child_job_drained_begin}): the job pauses, as
     * QEMU's does, until {@link #drainResume}. The subclass must not end its run meanwhile.
     */
    protected final void drainPause() {
        pause();
    }

    /** The drained section of {@link #drainPause} ended. */
    protected final void drainResume() {
        resume();
    }

    private void pause() {
        if (pauseCount++ == 0) {
            if (status == JobStatus.RUNNING) {
                transition(JobStatus.PAUSED);
            } else if (status == JobStatus.READY) {
                transition(JobStatus.STANDBY);
            }
            pauseWork();
        }
    }

    private void resume() {
        if (--pauseCount == 0) {
            if (status == JobStatus.PAUSED) {
                transition(JobStatus.RUNNING);
            } else if (status == JobStatus.STANDBY) {
                transition(JobStatus.READY);
            }
            resumeWork();
        }
    }

    // ---------------------------------------------------------------- user verbs (QMP)

    /** job-pause / block-job-pause. */
    public final void userPause() {
        checkVerb(JobVerb.PAUSE);
        if (userPaused) {
            throw new JobException("Job is already paused");
        }
        userPaused = true;
        pause();
    }

    /** job-resume / block-job-resume. */
    public final void userResume() {
        checkVerb(JobVerb.RESUME);
        if (!userPaused || pauseCount <= 0) {
            throw new JobException("Can't resume a job that was not paused");
        }
        userPaused = false;
        resume();
    }

    /** job-cancel ({@code force} true) / block-job-cancel ({@code force} as given). */
    public final void userCancel(boolean force) {
        checkVerb(JobVerb.CANCEL);
        force = cancelForce(force);
        if (runEnded) {
            // Waiting or pending: only a forced cancel aborts (QEMU's deferred_to_main_loop case).
            if (force && !finalizingDone()) {
                cancelled = true;
                forceCancel = true;
                abortNow(CANCELED);
            }
            return;
        }
        cancelled = true;
        forceCancel |= force;
        if (userPaused) {
            userPaused = false;
            resume();
        }
        cancelWork();
    }

    private boolean finalizingDone() {
        return status != JobStatus.WAITING && status != JobStatus.PENDING;
    }

    /** job-complete / block-job-complete. */
    public final void userComplete() {
        checkVerb(JobVerb.COMPLETE);
        if (pauseCount > 0 || cancelled) {
            throw new JobException("The active block job '" + id + "' cannot be completed");
        }
        complete();
    }

    /** job-finalize. */
    public final void userFinalize() {
        checkVerb(JobVerb.FINALIZE);
        if (!finalizing) {
            doFinalize();
        }
    }

    /** job-dismiss. */
    public final void userDismiss() {
        checkVerb(JobVerb.DISMISS);
        dismissNow();
    }

    /** block-job-set-speed. */
    public final void userSetSpeed(long bytesPerSecond) {
        checkVerb(JobVerb.SET_SPEED);
        speed = checkSpeed(bytesPerSecond);
        speedChanged();
    }

    private static long checkSpeed(long s) {
        if (s < 0) {
            throw new JobException("Invalid parameter 'speed'");
        }
        return s;
    }

    @Override
    public String toString() {
        return type() + " job " + id + " [" + status.qapi() + " " + progress + "/" + totalProgress() + "]";
    }
}
