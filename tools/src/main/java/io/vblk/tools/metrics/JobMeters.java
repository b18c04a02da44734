package io.vblk.tools.metrics;

import io.vblk.aio.metrics.Meter;
import io.vblk.drivers.job.Job;
import io.vblk.drivers.job.JobListener;
import io.vblk.drivers.job.JobStatus;
import io.vblk.drivers.job.MirrorJob;

import java.util.HashMap;
import java.util.Map;

/**
 * Home thread: the main loop (the jobs' listener calls); a scrape reads each job's counters from
 * its own thread, a racy snapshot as for every live component's meters.
 *
 * <p>Binds each block job's meters while it exists: {@code vblk_job_progress_bytes} and
 * {@code vblk_job_total_bytes} (QMP current-progress / total-progress) and
 * {@code vblk_job_copied_bytes_total}, tagged with the job's id and type; the binding goes when the
 * job is dismissed.
 */
public final class JobMeters implements JobListener {
    private final VblkMetrics metrics;
    private final Map<Job, Binding> bound = new HashMap<>();

    public JobMeters(VblkMetrics metrics) {
        this.metrics = metrics;
    }

    @Override
    public void statusChanged(Job job) {
        if (job.status() == JobStatus.RUNNING && !bound.containsKey(job)) {
            Binding b = metrics.open("job " + job.id());
            metrics.gauge(b, Meter.JOB_PROGRESS, job, Job::currentProgress, job.id(), job.type());
            metrics.gauge(b, Meter.JOB_TOTAL, job, Job::totalProgress, job.id(), job.type());
            metrics.counter(b, Meter.JOB_COPIED, job, j -> j instanceof MirrorJob m ? m.bytesCopied() : j.currentProgress(),
                    job.id(), job.type());
            bound.put(job, metrics.done(b));
        } else if (job.status() == JobStatus.NULL) {
            Binding b = bound.remove(job);
            if (b != null) {
                b.close();
            }
        }
    }
}
