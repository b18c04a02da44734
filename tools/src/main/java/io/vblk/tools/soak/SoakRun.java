package io.vblk.tools.soak;

import io.vblk.tools.metrics.ProcessSample;
import io.vblk.aio.AioOptions;
import io.vblk.aio.IoThread;
import io.vblk.aio.Periodic;
import io.vblk.guest.BlkSlot;
import io.vblk.guest.BlkWireLayout;
import io.vblk.guest.GuestBlkDriver;
import io.vblk.guest.GuestBlkQueue;
import io.vblk.guest.Workload;
import io.vblk.guest.WorkloadResult;
import io.vblk.guest.WorkloadRun;
import io.vblk.guest.vhost.VhostUserTransport;
import io.vblk.tools.serve.ServeCommand;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.io.RandomAccessFile;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Home thread: the CLI's main thread (no context's home thread) runs the client cycles; the
 * sampler runs on its own IoThread as {@link Periodic} work.
 *
 * <p>{@code vblk bench --soak DURATION}: starts a {@code vblk serve} child process on a sparse image
 * and, until DURATION has passed, runs cycles of mixed verified load against it over vhost-user
 * (random reads and writes with self-checking blocks, read back at the end of each cycle, then a
 * FLUSH and a DISCARD), each cycle on a new connection (a periodic client reconnect). Every
 * interval it prints the server's RSS, fd count and thread count from {@code /proc}; at the end a
 * first / warm / last / max summary and whether they stayed flat, then stops the server with
 * SIGTERM and checks it exits 0. Exit status 0 only when every cycle verified, the server stopped
 * cleanly and the footprint stayed flat.
 */
public final class SoakRun {
    /** What to run; see {@code vblk bench --help}. */
    public record Options(Duration duration, Duration interval, Duration reconnect, int queues, int queueDepth,
                          long imageBytes, Path workDir) {
    }

    /** Bound on stopping the sampler: an early wake ends its sleep at once, whatever the interval. */
    static final Duration SAMPLER_STOP_BOUND = Duration.ofSeconds(10);
    /** The verified region ends this far before the image's end: the DISCARD goes there. */
    private static final long DISCARD_BYTES = 1 << 20;

    private final Options o;
    private final PrintWriter out;
    private final Footprint footprint = new Footprint();
    private final AtomicLong requests = new AtomicLong();
    private final AtomicLong cycles = new AtomicLong();
    /** Cycles that ended (their connection closed): readings after the first are past the warm-up. */
    private final AtomicLong cyclesDone = new AtomicLong();
    private volatile String failure;

    private SoakRun(Options o, PrintWriter out) {
        this.o = o;
        this.out = out;
    }

    /** Runs the soak, printing to {@code out}; true when it passed (see the class comment). */
    public static boolean run(Options o, PrintWriter out) throws IOException, InterruptedException {
        return new SoakRun(o, out).run();
    }

    private boolean run() throws IOException, InterruptedException {
        Files.createDirectories(o.workDir());
        Path img = o.workDir().resolve("soak.img");
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(o.imageBytes());
        }
        String sock = o.workDir().resolve("soak.sock").toString();
        Path serverLog = o.workDir().resolve("serve.log");
        Process server = startServer(img, sock, serverLog);
        long t0 = System.nanoTime();
        // The sampler is periodic work on its own event loop, stopped with an early wake (seed 001's
        // guarded Sleeper): the run's end does not wait out an interval.
        IoThread samplerLoop = IoThread.start("soak-sampler", AioOptions.DEFAULT);
        Periodic sampler = Periodic.start(samplerLoop.ctx(), "soak-sampler", o.interval(), () -> sample(server.pid(), t0));
        int exit;
        try {
            long deadline = t0 + o.duration().toNanos();
            while (failure == null && System.nanoTime() < deadline) {
                cycle(sock, Math.min(o.reconnect().toNanos(), deadline - System.nanoTime()));
                cyclesDone.incrementAndGet();
            }
        } finally {
            if (!sampler.stop(SAMPLER_STOP_BOUND)) {
                failure = "the sampler did not stop within " + SAMPLER_STOP_BOUND;
            }
            samplerLoop.close();
            if (failure == null) {
                    try {
                    sampleOnce(server.pid(), t0); // the last reading: no client connected
                } catch (IOException e) {
                    failure = "the server went away: " + e.getMessage();
                }
            }
            server.toHandle().destroy(); // SIGTERM: the daemon's orderly shutdown
            exit = server.waitFor(60, TimeUnit.SECONDS) ? server.exitValue() : -1;
            server.destroyForcibly();
        }
        boolean flat = footprint.flat();
        out.println("soak summary: " + footprint.summary());
        out.println("soak result: cycles=" + cycles.get() + " requests=" + requests.get() + " server_exit=" + exit
                + " verify=" + (failure == null ? "ok" : "FAILED (" + failure + ")") + " flat=" + (flat ? "yes" : "NO")
                + " server_log=" + serverLog);
        out.flush();
        Files.deleteIfExists(img);
        return failure == null && exit == 0 && flat;
    }

    private Process startServer(Path img, String sock, Path log) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of(ProcessHandle.current().info().command().orElse("java"),
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
                "io.vblk.tools.Main", "serve", img.toString(), "--socket", sock,
                "--num-queues", Integer.toString(o.queues()), "--iothreads", "1"));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        CompletableFuture<Void> ready = new CompletableFuture<>();
        Writer w = Files.newBufferedWriter(log, StandardCharsets.UTF_8);
        Thread.ofPlatform().name("soak-server-log").daemon().start(() -> {
            try (w; BufferedReader br = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = br.readLine()) != null) {
                    w.write(line);
                    w.write('\n');
                    w.flush();
                    if (line.startsWith(ServeCommand.READY)) {
                        ready.complete(null);
                    }
                }
            } catch (IOException e) {
                ready.completeExceptionally(e);
            }
            ready.completeExceptionally(new IllegalStateException("vblk serve exited before it was ready; see " + log));
        });
        try {
            ready.get(120, TimeUnit.SECONDS);
        } catch (Exception e) {
            p.destroyForcibly();
            throw new IOException("vblk serve did not start: " + e.getMessage(), e);
        }
        out.println("soak: vblk serve pid " + p.pid() + " on " + sock + " (" + o.queues() + " queue(s), log " + log + ")");
        out.flush();
        return p;
    }

    /** One connection: verified mixed load for {@code nanos}, a FLUSH and a DISCARD, then disconnect. */
    private void cycle(String sock, long nanos) throws InterruptedException {
        long n = cycles.incrementAndGet();
        try (VhostUserTransport t = VhostUserTransport.connect(sock, Duration.ofSeconds(10));
             GuestBlkDriver g = GuestBlkDriver.attach(t, GuestBlkDriver.Options.defaults().withQueues(o.queues())
                     .withSlots(o.queueDepth()))) {
            long verified = o.imageBytes() - DISCARD_BYTES;
            Workload w = Workload.of(Workload.Pattern.RANDRW).withQueueDepth(o.queueDepth())
                    .withDuration(Math.max(nanos, 1_000_000)).withVerify(true).withSeed(n).withRegion(0, verified);
            WorkloadRun run = WorkloadRun.start(g, w);
            WorkloadResult r = run.await(Duration.ofNanos(nanos).plusSeconds(120));
            requests.addAndGet(r.total().completed);
            if (!r.ok() || r.total().verifyFailures != 0) {
                failure = "cycle " + n + ": " + (r.error() != null ? r.error() : r.total().verifyFailures + " verify failures");
                return;
            }
            GuestBlkQueue q = g.queue(0);
            int[] status = {BlkSlot.STATUS_UNSET};
            q.onCompletion((s, st, len) -> {
                status[0] = st;
                q.release(s);
            });
            BlkSlot s = q.acquire();
            q.postFlush(s);
            check(q, status, "FLUSH", n, false);
            s = q.acquire();
            s.setSegment(0, verified / 512, (int) (DISCARD_BYTES / 512), 0);
            q.postSegments(s, BlkWireLayout.T_DISCARD, 1);
            check(q, status, "DISCARD", n, true);
            requests.addAndGet(2);
        } catch (RuntimeException e) {
            failure = "cycle " + n + ": " + e;
        }
    }

    private void check(GuestBlkQueue q, int[] status, String what, long n, boolean unsupportedOk) {
        status[0] = BlkSlot.STATUS_UNSET;
        q.kick();
        if (q.awaitCompletions(1, 30_000) != 1) {
            failure = "cycle " + n + ": " + what + " did not complete in 30 s";
        } else if (status[0] != 0 && !(unsupportedOk && status[0] == 2)) {
            failure = "cycle " + n + ": " + what + " returned status " + status[0];
        }
    }

    private synchronized void sampleOnce(long pid, long t0) throws IOException {
        ProcessSample s = ProcessSample.of(pid);
        footprint.add(s, cyclesDone.get() > 0);
        out.println("soak t=" + (System.nanoTime() - t0) / 1_000_000_000L + "s cycles=" + cycles.get()
                + " requests=" + requests.get() + " rss_kb=" + s.rssKb() + " fds=" + s.fds() + " threads=" + s.threads());
        out.flush();
    }

    /** One reading, on the sampler's loop; a failed one ends the run (the cycles see the failure). */
    private void sample(long pid, long t0) {
        if (failure != null) {
            return;
        }
        try {
            sampleOnce(pid, t0);
        } catch (IOException e) {
            failure = "the server went away: " + e.getMessage();
        }
    }
}
