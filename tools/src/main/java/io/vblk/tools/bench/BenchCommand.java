package io.vblk.tools.bench;

import io.vblk.virtio.blk.BlkDeviceConfig;
import io.vblk.tools.version.VblkVersion;
import io.vblk.aio.AioOptions;
import io.vblk.guest.GuestBlkDriver;
import io.vblk.guest.GuestFeatures;
import io.vblk.guest.Workload;
import io.vblk.guest.WorkloadResult;
import io.vblk.guest.WorkloadRun;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Spec;

import io.vblk.tools.soak.SoakRun;

import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.Callable;

/**
 * Home thread: the CLI's main thread (no context's home thread); it builds the target, waits
 * for the run while drawing the progress bar, and tears everything down.
 *
 * <p>{@code vblk bench}: runs the emulated guest against a virtio-blk device and reports IOPS,
 * bandwidth, latency percentiles, notifications and kicks per request, io_submit calls per request
 * and CPU time per request, as text or as one JSON object.
 */
@Command(name = "bench", mixinStandardHelpOptions = true, versionProvider = VblkVersion.class, sortOptions = false,
        description = {"Drive a virtio-blk device as a guest would (in process, through its virtqueues and "
                + "eventfds) and report IOPS, MB/s, latency p50/p99/p99.9, notifications and io_submit calls "
                + "per request, and CPU time per request."})
public final class BenchCommand implements Callable<Integer> {
    /** Exit status when the run itself failed (I/O errors, verify mismatch, a stall). */
    public static final int EXIT_RUN_FAILED = 1;

    @Spec
    CommandSpec spec;

    @Option(names = "--driver", defaultValue = "null", paramLabel = "SPEC",
            description = "Block driver behind the in-process device, in the drivers' spec syntax: "
                    + "null[:size=SIZE,completion=sync|async,read-zeroes=on|off], file:PATH[,aio=threads|native|io_uring][,cache=writeback|none], "
                    + "fault:...;inner=SPEC (default: ${DEFAULT-VALUE}).")
    String driver;

    @Option(names = "--target", defaultValue = "in-process", paramLabel = "TARGET",
            description = "Where the device runs: in-process (default: built here from --driver, --queues and "
                    + "--iothreads), or vhost-user:SOCKET (a running vhost-user-blk back-end, e.g. vblk serve "
                    + "or qemu-storage-daemon).")
    String target;

    @Option(names = "--rw", defaultValue = "randread", paramLabel = "PATTERN",
            description = "read, write, randread, randwrite, rw, randrw (default: ${DEFAULT-VALUE}).")
    String rw;

    @Option(names = "--rwmixread", defaultValue = "50", paramLabel = "PCT",
            description = "Percentage of reads in rw/randrw (default: ${DEFAULT-VALUE}).")
    int rwmixread;

    @Option(names = "--bs", defaultValue = "4k", paramLabel = "SIZE",
            description = "Block size, a multiple of 512 (default: ${DEFAULT-VALUE}).")
    String bs;

    @Option(names = "--qd", defaultValue = "32", paramLabel = "N",
            description = "Requests in flight per queue (default: ${DEFAULT-VALUE}).")
    int qd;

    @Option(names = "--queues", defaultValue = "1", paramLabel = "N",
            description = "Virtqueues driven, one guest vCPU thread each (default: ${DEFAULT-VALUE}).")
    int queues;

    @Option(names = "--iothreads", defaultValue = "1", paramLabel = "N",
            description = "IoThreads serving the queues, queues mapped round-robin (default: ${DEFAULT-VALUE}).")
    int iothreads;

    @Option(names = "--duration", defaultValue = "10s", paramLabel = "TIME",
            description = "Run time, e.g. 500ms, 10s, 2m (default: ${DEFAULT-VALUE}); ignored with --requests.")
    String duration;

    @Option(names = "--requests", paramLabel = "N",
            description = "Stop after N requests in total instead of after --duration.")
    Long requests;

    @Option(names = "--verify",
            description = "Write self-checking blocks (LBA, generation, CRC-32C per sector), check every read, "
                    + "and read every written block back at the end.")
    boolean verify;

    @Option(names = "--json", description = "Print the result as one JSON object.")
    boolean json;

    @Option(names = "--size", paramLabel = "SIZE", description = "Bytes of the device to use (default: all).")
    String size;

    @Option(names = "--offset", defaultValue = "0", paramLabel = "SIZE",
            description = "First byte of the device to use (default: 0).")
    String offset;

    @Option(names = "--seed", defaultValue = "1", paramLabel = "N",
            description = "Seed for offsets and the read/write mix (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--segments", defaultValue = "1", paramLabel = "N",
            description = "Data descriptors per request (default: ${DEFAULT-VALUE}).")
    int segments;

    @Option(names = "--queue-size", defaultValue = "256", paramLabel = "N",
            description = "Virtqueue size, a power of two (default: ${DEFAULT-VALUE}).")
    int queueSize;

    @Option(names = "--guest-poll",
            description = "The guest polls the used ring instead of sleeping on the call eventfd "
                    + "(the device gets no call eventfd).")
    boolean guestPoll;

    @Option(names = "--ring", defaultValue = "split", paramLabel = "LAYOUT",
            description = "Virtqueue layout: split or packed (VIRTIO_F_RING_PACKED, virtio 1.2 section 2.8; "
                    + "default: ${DEFAULT-VALUE}).")
    String ring;

    @Option(names = "--no-event-idx", description = "Do not negotiate VIRTIO_F_EVENT_IDX.")
    boolean noEventIdx;

    @Option(names = "--no-indirect", description = "Do not negotiate VIRTIO_F_INDIRECT_DESC.")
    boolean noIndirect;

    @Option(names = "--poll-max-ns", paramLabel = "NS",
            description = "IoThread adaptive busy-poll window maximum in ns, 0 = off (default: the IoThread default).")
    Long pollMaxNs;

    @Option(names = "--submit-batch", paramLabel = "N",
            description = "READs/WRITEs a queue pass submits before it notifies the guest and goes on, 0 = the whole"
                    + " pass (default: the device default, " + BlkDeviceConfig.DEFAULT_SUBMIT_BATCH + ").")
    Integer submitBatch;

    @Option(names = "--progress", defaultValue = "auto", paramLabel = "WHEN",
            description = "Progress bar on stderr: auto (when a terminal), on, off (default: ${DEFAULT-VALUE}).")
    String progress;

    @Option(names = "--soak", paramLabel = "TIME",
            description = "Soak mode: start a vblk serve on a sparse image and run mixed verified load (reads, "
                    + "writes, flush, discard) against it over vhost-user for TIME (e.g. 1h), reconnecting every "
                    + "--soak-reconnect; print the server's RSS, fds and threads every --soak-interval and whether "
                    + "they stayed flat. Uses --queues, --qd and --size (image size, default 256m).")
    String soak;

    @Option(names = "--soak-interval", defaultValue = "10s", paramLabel = "TIME",
            description = "Soak mode: time between footprint lines (default: ${DEFAULT-VALUE}).")
    String soakInterval;

    @Option(names = "--soak-reconnect", defaultValue = "30s", paramLabel = "TIME",
            description = "Soak mode: time on one connection before the client reconnects (default: ${DEFAULT-VALUE}).")
    String soakReconnect;

    @Option(names = "--soak-dir", paramLabel = "DIR",
            description = "Soak mode: where the image, socket and server log go (default: a new temporary directory).")
    String soakDir;

    private static final ThreadMXBean THREADS = ManagementFactory.getThreadMXBean();

    @Override
    public Integer call() throws Exception {
        if (soak != null) {
            return soak();
        }
        Workload w = workload();
        if (iothreads < 1 || iothreads > 64) {
            throw bad("--iothreads", iothreads, "1..64");
        }
        if (queues < 1 || queues > 64) {
            throw bad("--queues", queues, "1..64");
        }
        if (submitBatch != null && (submitBatch < 0 || submitBatch > 1024)) {
            throw bad("--submit-batch", submitBatch, "0 (the whole pass) or 1..1024");
        }
        if (queueSize < 2 || queueSize > 1024 || Integer.bitCount(queueSize) != 1) {
            throw bad("--queue-size", queueSize, "a power of two in 2..1024");
        }
        boolean showProgress = switch (progress) {
            case "auto" -> ProgressBar.stderrIsTerminal() && !json;
            case "on" -> true;
            case "off" -> false;
            default -> throw bad("--progress", progress, "auto, on or off");
        };
        if (pollMaxNs != null && pollMaxNs < 0) {
            throw bad("--poll-max-ns", pollMaxNs, "0 (off) or a positive number of nanoseconds");
        }
        boolean packed = switch (ring) {
            case "split" -> false;
            case "packed" -> true;
            default -> throw bad("--ring", ring, "split or packed");
        };
        AioOptions io = pollMaxNs == null ? AioOptions.DEFAULT : AioOptions.polling(pollMaxNs);
        int slots = qd;
        int perRequest = noIndirect ? segments + 2 : 1;
        if ((long) slots * perRequest > queueSize) {
            throw bad("--qd", qd, "at most --queue-size (" + queueSize + ")"
                    + (noIndirect ? " / " + perRequest + " descriptors per request" : ""));
        }

        try (BenchTarget t = openTarget(io)) {
            long want = packed ? GuestFeatures.WITH_PACKED : GuestFeatures.SUPPORTED;
            if (noEventIdx) {
                want &= ~GuestFeatures.bit(GuestFeatures.F_EVENT_IDX);
            }
            if (noIndirect) {
                want &= ~GuestFeatures.bit(GuestFeatures.F_INDIRECT_DESC);
            }
            GuestBlkDriver.Options go = GuestBlkDriver.Options.defaults().withQueues(queues).withQueueSize(queueSize)
                    .withSlots(slots).withMaxDataBytes(w.blockSize()).withMaxSegments(Math.max(segments, 1))
                    .withFeatures(want).withInterrupts(!guestPoll);
            try (GuestBlkDriver guest = GuestBlkDriver.attach(t.transport(), go)) {
                BenchReport report = run(t, guest, w, showProgress);
                PrintWriter out = spec.commandLine().getOut();
                out.print(json ? report.json() + System.lineSeparator() : report.text());
                out.flush();
                return report.result().ok() ? 0 : EXIT_RUN_FAILED;
            }
        }
    }

    private BenchReport run(BenchTarget t, GuestBlkDriver guest, Workload w, boolean showProgress)
            throws InterruptedException {
        List<Thread> io = t.ioThreads();
        long[] io0 = cpu(io);
        long ctl0 = cpu(t.controlThread());
        long submit0 = t.ioSubmitCalls();
        ProgressBar bar = new ProgressBar(System.err, showProgress);
        WorkloadRun run = WorkloadRun.start(guest, w);
        long bound = (w.durationNanos() > 0 ? w.durationNanos() : 0) + w.stallNanos() + Duration.ofSeconds(30).toNanos();
        Duration tick = Duration.ofMillis(200);
        while (!run.isDone() && run.elapsedNanos() < bound) {
            if (bar.enabled()) {
                long done = run.completed();
                double f = w.requests() > 0 ? (double) done / w.requests() : (double) run.elapsedNanos() / w.durationNanos();
                bar.update(f, done, run.elapsedNanos());
            }
            run.threads().get(0).join(tick);
        }
        WorkloadResult r = run.await(Duration.ofSeconds(10));
        bar.finish();
        long[] io1 = cpu(io);
        long ioCpu = 0;
        for (int i = 0; i < io1.length; i++) {
            ioCpu += io1[i] - io0[i];
        }
        long ctlCpu = cpu(t.controlThread()) - ctl0;
        long submits = submit0 < 0 ? -1 : t.ioSubmitCalls() - submit0;
        boolean local = t instanceof InProcessTarget;
        return new BenchReport(t.describe(), local ? driver : null, w, guest.queueCount(), local ? iothreads : -1, guestPoll,
                GuestFeatures.describe(guest.features()), r, ioCpu, r.total().cpuNanos, ctlCpu, submits,
                t.meterSnapshot());
    }

    private int soak() throws Exception {
        if (queues < 1 || queues > 16) {
            throw bad("--queues", queues, "1..16 in soak mode");
        }
        if (qd < 1 || qd > 128) {
            throw bad("--qd", qd, "1..128 in soak mode");
        }
        long bytes = size == null ? 256L << 20 : size("--size", size);
        if (bytes < (16L << 20) || bytes % 4096 != 0) {
            throw bad("--size", size, "a multiple of 4k of at least 16m in soak mode");
        }
        Path dir = soakDir != null ? Path.of(soakDir) : Files.createTempDirectory("vblk-soak");
        SoakRun.Options o = new SoakRun.Options(duration("--soak", soak), duration("--soak-interval", soakInterval),
                duration("--soak-reconnect", soakReconnect), queues, qd, bytes, dir);
        return SoakRun.run(o, spec.commandLine().getOut()) ? 0 : EXIT_RUN_FAILED;
    }

    private Duration duration(String option, String value) {
        try {
            Duration d = Units.parseDuration(value);
            if (d.isZero() || d.isNegative()) {
                throw bad(option, value, "a positive duration, e.g. 500ms, 10s, 2m, 1h");
            }
            return d;
        } catch (IllegalArgumentException e) {
            throw new ParameterException(spec.commandLine(), option + ": " + e.getMessage());
        }
    }

    /** Builds the workload from the options; a bad option fails naming itself and what it accepts. */
    Workload workload() {
        Workload.Pattern p;
        try {
            p = Workload.Pattern.parse(rw);
        } catch (IllegalArgumentException e) {
            throw new ParameterException(spec.commandLine(), "--rw: " + e.getMessage());
        }
        long bsBytes = size("--bs", bs);
        if (bsBytes < 512 || bsBytes % 512 != 0 || bsBytes > (16 << 20)) {
            throw bad("--bs", bs, "a multiple of 512 up to 16m");
        }
        if (rwmixread < 0 || rwmixread > 100) {
            throw bad("--rwmixread", rwmixread, "0..100");
        }
        if (qd < 1 || qd > 1024) {
            throw bad("--qd", qd, "1..1024");
        }
        if (segments < 1 || segments > bsBytes / 512) {
            throw bad("--segments", segments, "1.." + bsBytes / 512 + " for --bs " + bs);
        }
        long durationNanos = 0;
        long count = 0;
        if (requests != null) {
            if (requests < 1) {
                throw bad("--requests", requests, "a positive count");
            }
            count = requests;
        } else {
            try {
                durationNanos = Units.parseDuration(duration).toNanos();
            } catch (IllegalArgumentException e) {
                throw new ParameterException(spec.commandLine(), "--duration: " + e.getMessage());
            }
        }
        long off = size("--offset", offset);
        if (off % bsBytes != 0) {
            throw bad("--offset", offset, "a multiple of --bs");
        }
        long len = size == null ? 0 : size("--size", size);
        return new Workload(p, rwmixread, (int) bsBytes, qd, durationNanos, count, verify, seed, off, len, segments,
                Duration.ofSeconds(10).toNanos());
    }

    private BenchTarget openTarget(AioOptions io) {
        if (target.startsWith("vhost-user:")) {
            String path = target.substring("vhost-user:".length());
            if (path.isEmpty()) {
                throw bad("--target", target, "in-process or vhost-user:SOCKET");
            }
            for (String local : new String[] {"--driver", "--iothreads", "--poll-max-ns", "--submit-batch"}) {
                if (spec.commandLine().getParseResult().hasMatchedOption(local)) {
                    throw new ParameterException(spec.commandLine(), local + " applies to --target in-process only;"
                            + " the vhost-user back-end at " + path + " has its own");
                }
            }
            try {
                return VhostUserTarget.connect(path, Duration.ofSeconds(10));
            } catch (IllegalStateException e) {
                throw new ParameterException(spec.commandLine(), "--target " + target + ": " + e.getMessage());
            }
        }
        if (target.equals("in-process")) {
            try {
                return InProcessTarget.open(driver, queues, iothreads, queueSize, io, verify,
                        submitBatch == null ? BlkDeviceConfig.DEFAULT_SUBMIT_BATCH : submitBatch);
            } catch (IllegalArgumentException e) {
                // The spec parser and the device name what is wrong; say which option it came from.
                throw new ParameterException(spec.commandLine(), "--driver: " + e.getMessage());
            }
        }
        throw bad("--target", target, "in-process or vhost-user:SOCKET");
    }

    private long size(String option, String value) {
        try {
            return Units.parseSize(value);
        } catch (IllegalArgumentException e) {
            throw new ParameterException(spec.commandLine(), option + ": " + e.getMessage());
        }
    }

    private ParameterException bad(String option, Object value, String accepts) {
        return new ParameterException(spec.commandLine(), option + " " + value + " is out of range; it accepts "
                + accepts);
    }

    private static long cpu(Thread t) {
        if (t == null) {
            return 0;
        }
        long v = THREADS.getThreadCpuTime(t.threadId());
        return Math.max(v, 0);
    }

    private static long[] cpu(List<Thread> ts) {
        long[] v = new long[ts.size()];
        for (int i = 0; i < v.length; i++) {
            v[i] = cpu(ts.get(i));
        }
        return v;
    }
}
