package io.vblk.drivers.job;

import io.vblk.drivers.node.BlockNode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Duration;
import java.util.List;

import static io.vblk.drivers.job.JobStatus.*;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * Any thread (test code); the jobs live on a main-loop IoThread and every step runs there.
 *
 * <p>The job state machine: QEMU's transition and verb tables, the ending with and without
 * auto-finalize / auto-dismiss, cancel, pause and resume with QEMU's messages, and the events in
 * QEMU's order.
 */
@Timeout(30)
class JobStateTest extends MainLoopJobsTest {
    JobStateTest() {
        super(Duration.ofSeconds(10));
    }

    /** A job whose work ends when the test says; readiness as the test says. */
    private final class StepJob extends Job {
        boolean paused;
        boolean cancelSeen;
        boolean completed;

        StepJob(String id, boolean autoFinalize, boolean autoDismiss) {
            super(jobs, id, autoFinalize, autoDismiss, 0);
        }

        @Override
        public String type() {
            return "mirror";
        }

        @Override
        public List<BlockNode> nodes() {
            return List.of();
        }

        @Override
        protected long remaining() {
            return 100 - progress;
        }

        @Override
        protected void run() {
        }

        @Override
        public boolean busy() {
            return false;
        }

        @Override
        protected void pauseWork() {
            paused = true;
        }

        @Override
        protected void resumeWork() {
            paused = false;
        }

        @Override
        protected void cancelWork() {
            cancelSeen = true;
        }

        @Override
        protected boolean cancelForce(boolean force) {
            return force || !isReady();
        }

        @Override
        protected void complete() {
            completed = true;
        }

        void ready() {
            progress = 100;
            transitionToReady();
        }

        void end(String err) {
            runFinished(err);
        }
    }

    private StepJob start(String id, boolean autoFinalize, boolean autoDismiss) {
        return on(() -> {
            jobs.addListener(new StatusRecorder() {
                @Override
                public void ready(Job job) {
                    events.add("READY");
                }

                @Override
                public void pending(Job job) {
                    events.add("PENDING");
                }

                @Override
                public void completed(Job job, String error) {
                    events.add(error == null ? "COMPLETED" : "COMPLETED(" + error + ")");
                }

                @Override
                public void cancelled(Job job) {
                    events.add("CANCELLED");
                }
            });
            return jobs.start(new StepJob(id, autoFinalize, autoDismiss));
        });
    }

    @Test
    void tablesAreQemus() {
        assertThat(UNDEFINED.canBecome(CREATED)).isTrue();
        assertThat(CREATED.canBecome(NULL)).isTrue();
        assertThat(RUNNING.canBecome(READY)).isTrue();
        assertThat(RUNNING.canBecome(WAITING)).isTrue();
        assertThat(READY.canBecome(RUNNING)).as("a ready job never runs again").isFalse();
        assertThat(PAUSED.canBecome(RUNNING)).isTrue();
        assertThat(STANDBY.canBecome(READY)).isTrue();
        assertThat(PENDING.canBecome(CONCLUDED)).isTrue();
        assertThat(CONCLUDED.canBecome(NULL)).isTrue();
        assertThat(NULL.canBecome(CREATED)).isFalse();
        int allowed = 0;
        for (JobStatus a : values()) {
            for (JobStatus b : values()) {
                allowed += a.canBecome(b) ? 1 : 0;
            }
        }
        assertThat(allowed).as("QEMU's JobSTT has 20 allowed transitions").isEqualTo(20);
        assertThat(JobVerb.COMPLETE.allowedIn(READY)).isTrue();
        assertThat(JobVerb.COMPLETE.allowedIn(RUNNING)).isFalse();
        assertThat(JobVerb.CANCEL.allowedIn(PENDING)).isTrue();
        assertThat(JobVerb.CANCEL.allowedIn(ABORTING)).isFalse();
        assertThat(JobVerb.FINALIZE.allowedIn(PENDING)).isTrue();
        assertThat(JobVerb.DISMISS.allowedIn(CONCLUDED)).isTrue();
        assertThat(JobVerb.SET_SPEED.qapi()).isEqualTo("set-speed");
    }

    @Test
    void successWithAutoFinalizeAndDismissGoesAllTheWayToNull() {
        StepJob j = start("j0", true, true);
        run(j::ready);
        run(j::userComplete);
        run(() -> j.end(null));
        assertThat(events).containsExactly("created", "running", "ready", "READY", "waiting", "pending", "PENDING",
                "COMPLETED", "concluded", "null");
        assertThat(on(() -> jobs.get("j0"))).isNull();
        assertThat(j.completed).isTrue();
    }

    @Test
    void manualFinalizeAndDismiss() {
        StepJob j = start("j1", false, false);
        assertThatThrownBy(() -> run(j::userFinalize)).hasMessage("Job 'j1' in state 'running' cannot accept command verb 'finalize'");
        run(() -> j.end(null));
        assertThat(j.status()).isEqualTo(PENDING);
        assertThatThrownBy(() -> run(j::userDismiss)).hasMessage("Job 'j1' in state 'pending' cannot accept command verb 'dismiss'");
        run(j::userFinalize);
        assertThat(j.status()).isEqualTo(CONCLUDED);
        assertThat(on(() -> jobs.get("j1"))).isSameAs(j);
        run(j::userDismiss);
        assertThat(on(() -> jobs.get("j1"))).isNull();
        assertThat(events).endsWith("pending", "PENDING", "COMPLETED", "concluded", "null");
    }

    @Test
    void pauseResumeAndTheirMessages() {
        StepJob j = start("j2", true, true);
        assertThatThrownBy(() -> run(j::userResume)).hasMessage("Can't resume a job that was not paused");
        run(j::userPause);
        assertThat(j.status()).isEqualTo(PAUSED);
        assertThat(j.paused).isTrue();
        assertThatThrownBy(() -> run(j::userPause)).hasMessage("Job is already paused");
        run(j::userResume);
        assertThat(j.status()).isEqualTo(RUNNING);
        run(j::ready);
        run(j::userPause);
        assertThat(j.status()).isEqualTo(STANDBY);
        assertThatThrownBy(() -> run(j::userComplete)).hasMessage("Job 'j2' in state 'standby' cannot accept command verb 'complete'");
        run(j::userResume);
        assertThat(j.status()).isEqualTo(READY);
        assertThatThrownBy(() -> run(() -> j.userSetSpeed(-1))).hasMessage("Invalid parameter 'speed'");
        run(() -> j.userSetSpeed(1 << 20));
        assertThat(j.speed()).isEqualTo(1 << 20);
    }

    @Test
    void forceCancelAborts() {
        StepJob j = start("j3", true, true);
        run(j::userPause);
        run(() -> j.userCancel(true));
        assertThat(j.cancelSeen).isTrue();
        assertThat(j.status()).as("cancel resumes a paused job so it can end").isEqualTo(RUNNING);
        run(() -> j.end(null));
        assertThat(j.error()).isEqualTo(Job.CANCELED);
        assertThat(events).endsWith("aborting", "CANCELLED", "concluded", "null");
    }

    @Test
    void softCancelOfAReadyJobCompletes() {
        StepJob j = start("j4", true, true);
        run(j::ready);
        run(() -> j.userCancel(false));
        assertThat(j.isCancelled()).isFalse();
        assertThat(j.cancelRequested()).isTrue();
        run(() -> j.end(null));
        assertThat(events).endsWith("waiting", "pending", "PENDING", "COMPLETED", "concluded", "null");
    }

    @Test
    void anErrorEndsWithCompletedAndTheError() {
        StepJob j = start("j5", true, false);
        run(() -> j.end("Source I/O error: EIO"));
        assertThat(events).endsWith("aborting", "COMPLETED(Source I/O error: EIO)", "concluded");
        assertThat(j.status()).isEqualTo(CONCLUDED);
        assertThat(j.error()).isEqualTo("Source I/O error: EIO");
    }

    @Test
    void cancelWhilePendingAborts() {
        StepJob j = start("j6", false, true);
        run(() -> j.end(null));
        run(() -> j.userCancel(false));
        assertThat(events).endsWith("pending", "PENDING", "aborting", "CANCELLED", "concluded", "null");
    }

    @Test
    void idsAreUniqueAndValid() {
        start("j7", true, true);
        assertThatThrownBy(() -> start("j7", true, true)).hasMessage("Job ID 'j7' already in use");
        assertThatThrownBy(() -> start("7x", true, true)).hasMessage("Invalid job ID '7x'");
    }
}
