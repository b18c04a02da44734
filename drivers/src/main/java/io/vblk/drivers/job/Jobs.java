package io.vblk.drivers.job;

import io.vblk.aio.AioContext;
import io.vblk.drivers.node.BlockNode;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Home thread: the main loop. No locking.
 *
 * <p>The jobs of one daemon, as QEMU's job list: ids are unique among jobs that exist (until
 * dismissed), a node takes part in at most one job, and every listener hears every job's events
 * in the order they happen.
 */
public final class Jobs {
    private final AioContext home;
    private final Map<String, Job> jobs = new LinkedHashMap<>();
    private final List<JobListener> listeners = new ArrayList<>();
    private final JobListener fanout = new JobListener() {
        @Override
        public void statusChanged(Job job) {
            for (JobListener l : List.copyOf(listeners)) {
                l.statusChanged(job);
            }
        }

        @Override
        public void ready(Job job) {
            for (JobListener l : List.copyOf(listeners)) {
                l.ready(job);
            }
        }

        @Override
        public void pending(Job job) {
            for (JobListener l : List.copyOf(listeners)) {
                l.pending(job);
            }
        }

        @Override
        public void completed(Job job, String error) {
            for (JobListener l : List.copyOf(listeners)) {
                l.completed(job, error);
            }
        }

        @Override
        public void cancelled(Job job) {
            for (JobListener l : List.copyOf(listeners)) {
                l.cancelled(job);
            }
        }

        @Override
        public void ioError(Job job, boolean read, OnError.Action action) {
            for (JobListener l : List.copyOf(listeners)) {
                l.ioError(job, read, action);
            }
        }
    };

    /** Jobs on {@code home}, the main loop. */
    public Jobs(AioContext home) {
        this.home = home;
    }

    public AioContext home() {
        return home;
    }

    public void addListener(JobListener l) {
        home.assertHome();
        listeners.add(l);
    }

    public void removeListener(JobListener l) {
        home.assertHome();
        listeners.remove(l);
    }

    JobListener fanout() {
        return fanout;
    }

    /**
     * Checks that {@code id} may name a new job and that none of {@code nodes} is in another job
     * (QEMU's messages); throws {@link JobException} otherwise.
     */
    public void checkNew(String id, List<BlockNode> nodes) {
        home.assertHome();
        if (id == null || !id.matches("[A-Za-z][A-Za-z0-9._-]*")) {
            throw new JobException("Invalid job ID '" + id + "'");
        }
        if (jobs.containsKey(id)) {
            throw new JobException("Job ID '" + id + "' already in use");
        }
        for (Job j : jobs.values()) {
            for (BlockNode n : nodes) {
                if (j.nodes().contains(n)) {
                    throw new JobException("Node '" + n.name() + "' is busy: block device is in use by block job: " + j.type());
                }
            }
        }
    }

    /** Registers {@code job} (created), then starts it (running). */
    public <J extends Job> J start(J job) {
        checkNew(job.id(), job.nodes());
        job.setUp();
        jobs.put(job.id(), job);
        job.create();
        job.start();
        return job;
    }

    /** The job with {@code id}, or null. */
    public Job get(String id) {
        home.assertHome();
        return jobs.get(id);
    }

    /** Every job, in creation order. */
    public List<Job> all() {
        home.assertHome();
        return List.copyOf(jobs.values());
    }

    /** Whether a job uses {@code node}. */
    public boolean uses(BlockNode node) {
        home.assertHome();
        for (Job j : jobs.values()) {
            if (j.nodes().contains(node)) {
                return true;
            }
        }
        return false;
    }

    void removed(Job job) {
        jobs.remove(job.id(), job);
    }
}
