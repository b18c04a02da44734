package io.vblk.tools.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.vblk.drivers.job.BackupJob;
import io.vblk.drivers.job.Job;
import io.vblk.drivers.job.JobException;
import io.vblk.drivers.job.JobListener;
import io.vblk.drivers.job.JobStatus;
import io.vblk.drivers.job.JobVerb;
import io.vblk.drivers.job.Jobs;
import io.vblk.drivers.job.MirrorJob;
import io.vblk.drivers.job.OnError;
import io.vblk.drivers.node.BlockNode;
import io.vblk.tools.metrics.JobMeters;
import io.vblk.tools.qmp.Qmp.Args;

import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.function.BiConsumer;
import java.util.function.Consumer;
import java.util.function.Supplier;

/**
 * Home thread: the main loop. No locking.
 *
 * <p>The block job commands and events, with QEMU's names, arguments, result shapes and
 * messages (qapi/job.json, qapi/block-core.json): query-jobs, query-block-jobs, job-pause /
 * job-resume / job-cancel / job-complete / job-finalize / job-dismiss, block-job-cancel /
 * block-job-complete / block-job-pause / block-job-resume / block-job-set-speed,
 * blockdev-mirror and blockdev-backup. The jobs themselves live in io.vblk.drivers.job; this class turns their
 * {@link JobListener} calls into JOB_STATUS_CHANGE, BLOCK_JOB_READY, BLOCK_JOB_PENDING,
 * BLOCK_JOB_COMPLETED, BLOCK_JOB_CANCELLED and BLOCK_JOB_ERROR, and after a mirror's pivot points
 * the exports of the source at the target (query-block-exports, blockdev-del).
 */
final class JobCommands implements JobListener {
    private final QmpCommands cmds;
    private final Jobs jobs;

    JobCommands(QmpCommands cmds) {
        this.cmds = cmds;
        this.jobs = new Jobs(cmds.main());
        jobs.addListener(this);
        if (cmds.graph.metrics() != null) {
            jobs.addListener(new JobMeters(cmds.graph.metrics()));
        }
    }

    Jobs jobs() {
        return jobs;
    }

    void register(BiConsumer<String, QmpCommands.Handler> add) {
        add.accept("query-jobs", this::queryJobs);
        add.accept("query-block-jobs", this::queryBlockJobs);
        add.accept("job-pause", a -> verb(a, "id", false, Job::userPause));
        add.accept("job-resume", a -> verb(a, "id", false, Job::userResume));
        add.accept("job-cancel", a -> verb(a, "id", false, j -> j.userCancel(true)));
        add.accept("job-complete", a -> verb(a, "id", false, Job::userComplete));
        add.accept("job-finalize", a -> verb(a, "id", false, Job::userFinalize));
        add.accept("job-dismiss", a -> verb(a, "id", false, Job::userDismiss));
        add.accept("block-job-pause", a -> verb(a, "device", true, Job::userPause));
        add.accept("block-job-resume", a -> verb(a, "device", true, Job::userResume));
        add.accept("block-job-complete", a -> verb(a, "device", true, Job::userComplete));
        add.accept("block-job-cancel", a -> {
            boolean force = a.bool("force", false);
            return verb(a, "device", true, j -> j.userCancel(force));
        });
        add.accept("block-job-set-speed", a -> {
            long speed = a.integer("speed");
            return verb(a, "device", true, j -> j.userSetSpeed(speed));
        });
        add.accept("blockdev-mirror", this::blockdevMirror);
        add.accept("blockdev-backup", this::blockdevBackup);
    }

    /**
     * Force-cancels every job that has not concluded (the monitor is closing); the future
     * completes on the main loop once each has concluded or gone.
     */
    CompletableFuture<Void> cancelAll() {
        CompletableFuture<Void> all = new CompletableFuture<>();
        Runnable check = new Runnable() {
            @Override
            public void run() {
                for (Job j : jobs.all()) {
                    if (j.status() != JobStatus.CONCLUDED) {
                        cmds.main().timer("jobs.cancel-all", this).armIn(1_000_000L);
                        return;
                    }
                }
                all.complete(null);
            }
        };
        for (Job j : jobs.all()) {
            if (JobVerb.CANCEL.allowedIn(j.status())) {
                j.userCancel(true);
            }
        }
        check.run();
        return all;
    }

    /** Whether a job uses {@code node} (blockdev-del refuses it). */
    boolean uses(BlockNode node) {
        return jobs.uses(node);
    }

    private CompletableFuture<JsonNode> verb(Args a, String key, boolean blockJob, Consumer<Job> v) {
        String id = a.string(key);
        a.finish();
        Job j = jobs.get(id);
        if (j == null) {
            throw blockJob ? new QmpError("DeviceNotActive", "Block job '" + id + "' not found")
                    : QmpError.generic("Job not found");
        }
        try {
            v.accept(j);
        } catch (JobException e) {
            throw QmpError.generic(e.getMessage());
        }
        return CompletableFuture.completedFuture(Qmp.JSON.createObjectNode());
    }

    private CompletableFuture<JsonNode> queryJobs(Args a) {
        a.finish();
        ArrayNode l = Qmp.JSON.createArrayNode();
        for (Job j : jobs.all()) {
            ObjectNode o = l.addObject();
            o.put("current-progress", j.currentProgress());
            o.put("status", j.status().qapi());
            o.put("total-progress", j.totalProgress());
            o.put("type", j.type());
            o.put("id", j.id());
            if (j.error() != null) {
                o.put("error", j.error());
            }
        }
        return CompletableFuture.completedFuture(l);
    }

    private CompletableFuture<JsonNode> queryBlockJobs(Args a) {
        a.finish();
        ArrayNode l = Qmp.JSON.createArrayNode();
        for (Job j : jobs.all()) {
            ObjectNode o = l.addObject();
            o.put("auto-finalize", j.autoFinalize());
            o.put("io-status", "ok");
            o.put("device", j.id());
            o.put("auto-dismiss", j.autoDismiss());
            o.put("busy", j.busy());
            o.put("len", j.totalProgress());
            o.put("offset", j.currentProgress());
            o.put("status", j.status().qapi());
            o.put("paused", j.paused());
            o.put("speed", j.speed());
            o.put("ready", j.isReady());
            o.put("type", j.type());
            if (j.type().equals("mirror")) {
                o.put("actively-synced", false);
            }
            if (j.error() != null) {
                o.put("error", j.error());
            }
        }
        return CompletableFuture.completedFuture(l);
    }

    /**
     * blockdev-mirror: {@code job-id} (default: the device), {@code device}, {@code target},
     * {@code sync} (full; top is the same without a backing chain), {@code speed},
     * {@code granularity}, {@code buf-size}, {@code on-source-error}, {@code on-target-error},
     * {@code auto-finalize}, {@code auto-dismiss}, {@code copy-mode} (background), {@code unmap}.
     */
    private CompletableFuture<JsonNode> blockdevMirror(Args a) {
        CopyArgs c = CopyArgs.read(a);
        Long granularity = a.optInteger("granularity");
        a.optInteger("buf-size");
        EndArgs e = EndArgs.read(a);
        String copyMode = a.optString("copy-mode");
        a.bool("unmap", true);
        String replaces = a.optString("replaces");
        String filter = a.optString("filter-node-name");
        a.finish();
        if (!c.sync.equals("full") && !c.sync.equals("top")) {
            throw QmpError.generic("Parameter 'sync' does not accept value '" + c.sync + "'");
        }
        if (copyMode != null && !copyMode.equals("background")) {
            throw QmpError.generic("Parameter 'copy-mode' does not accept value '" + copyMode + "'");
        }
        if (replaces != null || filter != null) {
            throw QmpError.generic("Parameter '" + (replaces != null ? "replaces" : "filter-node-name")
                    + "' is not supported by vblk");
        }
        BlockNode src = node(c.device);
        BlockNode dst = targetNode(c.target, c.speed);
        long gran = granularity == null ? MirrorJob.DEFAULT_GRANULARITY : granularity;
        if (gran > Integer.MAX_VALUE) {
            throw QmpError.generic("Parameter 'granularity' expects a value in range [512B, 64MB]");
        }
        return start(() -> new MirrorJob(jobs, c.id(), src, dst, c.rate(), (int) gran, e.onSource, e.onTarget,
                e.autoFinalize, e.autoDismiss));
    }

    /**
     * blockdev-backup: {@code job-id} (default: the device), {@code device}, {@code target},
     * {@code sync} (full), {@code speed}, {@code on-source-error}, {@code on-target-error},
     * {@code auto-finalize}, {@code auto-dismiss}; {@code compress} false. A point-in-time copy of
     * the device at the command, by copy-before-write ({@link BackupJob}).
     */
    private CompletableFuture<JsonNode> blockdevBackup(Args a) {
        CopyArgs c = CopyArgs.read(a);
        EndArgs e = EndArgs.read(a);
        boolean compress = a.bool("compress", false);
        String bitmap = a.optString("bitmap");
        String filter = a.optString("filter-node-name");
        a.finish();
        if (!List.of("full", "top", "none", "incremental", "bitmap").contains(c.sync)) {
            throw QmpError.generic("Parameter 'sync' does not accept value '" + c.sync + "'");
        }
        if (!c.sync.equals("full")) {
            throw QmpError.generic("Parameter 'sync' value '" + c.sync + "' is not supported by vblk (only 'full')");
        }
        if (compress || bitmap != null || filter != null) {
            throw QmpError.generic("Parameter '" + (compress ? "compress" : bitmap != null ? "bitmap" : "filter-node-name")
                    + "' is not supported by vblk");
        }
        BlockNode src = node(c.device);
        BlockNode dst = targetNode(c.target, c.speed);
        return start(() -> new BackupJob(jobs, c.id(), src, dst, c.rate(), BackupJob.DEFAULT_CLUSTER, e.onSource,
                e.onTarget, e.autoFinalize, e.autoDismiss));
    }

    /** The arguments blockdev-mirror and blockdev-backup begin with, read in QEMU's order. */
    private record CopyArgs(String device, String jobId, String target, String sync, Long speed) {
        static CopyArgs read(Args a) {
            return new CopyArgs(a.string("device"), a.optString("job-id"), a.string("target"), a.string("sync"),
                    a.optInteger("speed"));
        }

        /** The job's id: {@code job-id}, or the device. */
        String id() {
            return jobId == null ? device : jobId;
        }

        /** The rate limit in bytes/s, 0 for none. */
        long rate() {
            return speed == null ? 0 : speed;
        }
    }

    /** The error policies and the ending of a copying job, read in QEMU's order. */
    private record EndArgs(OnError onSource, OnError onTarget, boolean autoFinalize, boolean autoDismiss) {
        static EndArgs read(Args a) {
            return new EndArgs(onError(a, "on-source-error"), onError(a, "on-target-error"), a.bool("auto-finalize", true),
                    a.bool("auto-dismiss", true));
        }
    }

    /** Starts the job {@code job} makes; a refusal is the command's error. */
    private CompletableFuture<JsonNode> start(Supplier<Job> job) {
        try {
            jobs.start(job.get());
        } catch (JobException e) {
            throw QmpError.generic(e.getMessage());
        }
        return CompletableFuture.completedFuture(Qmp.JSON.createObjectNode());
    }

    private BlockNode node(String name) {
        BlockNode n = cmds.graph.nodes().get(name);
        if (n == null) {
            throw QmpError.generic("Cannot find device='" + name + "' nor node-name='" + name + "'");
        }
        return n;
    }

    /** A job's target: exists, takes no other writer; {@code speed} checked first, as QEMU. */
    private BlockNode targetNode(String target, Long speed) {
        BlockNode dst = node(target);
        if (speed != null && speed < 0) {
            throw QmpError.generic("Invalid parameter 'speed'");
        }
        if (!dst.parents().isEmpty() || cmds.exports.usesNode(target)) {
            throw QmpError.generic("Node '" + target + "' is busy: node is used as the target of a mirror or in use");
        }
        return dst;
    }

    private static OnError onError(Args a, String key) {
        String s = a.optString(key);
        if (s == null) {
            return OnError.REPORT;
        }
        OnError e = OnError.parse(s);
        if (e == null) {
            throw QmpError.generic("Parameter '" + key + "' does not accept value '" + s + "'");
        }
        return e;
    }

    // ---------------------------------------------------------------- events

    private ObjectNode blockJobData(Job j) {
        ObjectNode d = Qmp.JSON.createObjectNode();
        d.put("type", j.type());
        d.put("device", j.id());
        d.put("len", j.totalProgress());
        d.put("offset", j.currentProgress());
        d.put("speed", j.speed());
        return d;
    }

    @Override
    public void statusChanged(Job job) {
        ObjectNode d = Qmp.JSON.createObjectNode();
        d.put("status", job.status().qapi());
        d.put("id", job.id());
        cmds.server.emit("JOB_STATUS_CHANGE", d);
    }

    @Override
    public void ready(Job job) {
        cmds.server.emit("BLOCK_JOB_READY", blockJobData(job));
    }

    @Override
    public void pending(Job job) {
        ObjectNode d = Qmp.JSON.createObjectNode();
        d.put("type", job.type());
        d.put("id", job.id());
        cmds.server.emit("BLOCK_JOB_PENDING", d);
    }

    @Override
    public void completed(Job job, String error) {
        if (job instanceof MirrorJob m && m.pivoted()) {
            // The exports of the source now serve the target.
            String from = m.source().name();
            cmds.graph.exportNodes().replaceAll((id, node) -> node.equals(from) ? m.target().name() : node);
        }
        ObjectNode d = blockJobData(job);
        if (error != null) {
            d.put("error", error);
        }
        cmds.server.emit("BLOCK_JOB_COMPLETED", d);
    }

    @Override
    public void cancelled(Job job) {
        cmds.server.emit("BLOCK_JOB_CANCELLED", blockJobData(job));
    }

    @Override
    public void ioError(Job job, boolean read, OnError.Action action) {
        ObjectNode d = Qmp.JSON.createObjectNode();
        d.put("device", job.id());
        d.put("operation", read ? "read" : "write");
        d.put("action", action.qapi());
        cmds.server.emit("BLOCK_JOB_ERROR", d);
    }
}
