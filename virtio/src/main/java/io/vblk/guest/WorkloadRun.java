package io.vblk.guest;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import static io.vblk.guest.BlkWireLayout.SECTOR_BYTES;

/**
 * Any thread that is no context's home thread (it joins the vCPU threads). {@link #completed()}
 * may be read from any thread while the run goes on.
 *
 * <p>A {@link Workload} running on every queue of a {@link GuestBlkDriver}, one vCPU thread per
 * queue. Each queue owns an equal, disjoint slice of the workload's region, so verify mode can
 * check every block without coordination between queues.
 */
public final class WorkloadRun {
    private final Workload workload;
    private final List<QueueRunner> runners;
    private final List<Thread> threads;
    private final long startNanos;
    private WorkloadResult result;

    private WorkloadRun(Workload workload, List<QueueRunner> runners, List<Thread> threads, long startNanos) {
        this.workload = workload;
        this.runners = runners;
        this.threads = threads;
        this.startNanos = startNanos;
    }

    /** Starts the workload on all of {@code driver}'s queues. */
    public static WorkloadRun start(GuestBlkDriver driver, Workload w) {
        return start(driver, w, driver.queueCount());
    }

    /** Starts the workload on the first {@code queues} of {@code driver}'s queues. */
    public static WorkloadRun start(GuestBlkDriver driver, Workload w, int queues) {
        if (queues < 1 || queues > driver.queueCount()) {
            throw new IllegalArgumentException("queues must be 1.." + driver.queueCount() + ", got " + queues);
        }
        long capacity = driver.config().capacitySectors() * SECTOR_BYTES;
        long regionEnd = w.regionBytes() == 0 ? capacity : w.regionOffset() + w.regionBytes();
        if (regionEnd > capacity || w.regionOffset() >= regionEnd) {
            throw new IllegalArgumentException("region [" + w.regionOffset() + ", " + regionEnd
                    + ") does not fit the device's " + capacity + " bytes");
        }
        long totalBlocks = (regionEnd - w.regionOffset()) / w.blockSize();
        long perQueue = totalBlocks / queues;
        if (perQueue < 1 || (w.verify() && perQueue < w.queueDepth())) {
            throw new IllegalArgumentException("region of " + totalBlocks + " blocks is too small for " + queues
                    + " queues" + (w.verify() ? " at queue depth " + w.queueDepth() + " in verify mode" : ""));
        }
        List<QueueRunner> runners = new ArrayList<>();
        long firstBlock = w.regionOffset() / w.blockSize();
        for (int i = 0; i < queues; i++) {
            long limit = w.requests() == 0 ? 0 : w.requests() / queues + (i < w.requests() % queues ? 1 : 0);
            if (w.requests() > 0 && limit == 0) {
                continue;
            }
            runners.add(new QueueRunner(driver.queue(i), w, firstBlock + i * perQueue, perQueue, limit));
        }
        List<Thread> threads = new ArrayList<>();
        long start = System.nanoTime();
        for (QueueRunner r : runners) {
            r.deadline(start + w.durationNanos());
            Thread t = new Thread(r, "vblk-guest-vcpu-" + r.stats().queue);
            t.setDaemon(true);
            threads.add(t);
        }
        WorkloadRun run = new WorkloadRun(w, List.copyOf(runners), List.copyOf(threads), start);
        driver.workloadStarted(run);
        for (Thread t : threads) {
            t.start();
        }
        return run;
    }

    public Workload workload() {
        return workload;
    }

    /** Requests completed so far over all queues. Any thread. */
    public long completed() {
        long n = 0;
        for (QueueRunner r : runners) {
            n += r.progress.get();
        }
        return n;
    }

    /** Requests made available to the device so far over all queues (as of each queue's last kick). Any thread. */
    public long posted() {
        long n = 0;
        for (QueueRunner r : runners) {
            n += r.postedProgress.get();
        }
        return n;
    }

    /** Nanoseconds since the start. */
    public long elapsedNanos() {
        return System.nanoTime() - startNanos;
    }

    /** The vCPU threads (for CPU accounting). */
    public List<Thread> threads() {
        return threads;
    }

    /** Asks every queue to stop issuing; what is in flight completes (and verify reads back). */
    public void stop() {
        for (QueueRunner r : runners) {
            r.stop = true;
        }
    }

    public boolean isDone() {
        for (Thread t : threads) {
            if (t.isAlive()) {
                return false;
            }
        }
        return true;
    }

    /**
     * Waits for every queue to finish, at most {@code timeout}; then returns the merged result.
     * When a queue does not finish in time it is told to stop, and the result says so.
     */
    public WorkloadResult await(Duration timeout) throws InterruptedException {
        if (result != null) {
            return result;
        }
        long end = System.nanoTime() + timeout.toNanos();
        boolean timedOut = false;
        for (Thread t : threads) {
            long left = end - System.nanoTime();
            if (left > 0) {
                t.join(Duration.ofNanos(left));
            }
            if (t.isAlive()) {
                timedOut = true;
            }
        }
        if (timedOut) {
            stop();
            // Stopping lets each runner drain its in-flight requests; give that a bounded moment.
            for (Thread t : threads) {
                t.join(Duration.ofSeconds(5));
            }
        }
        List<QueueStats> per = new ArrayList<>();
        QueueStats total = new QueueStats(-1);
        boolean stuck = false;
        for (int i = 0; i < runners.size(); i++) {
            if (threads.get(i).isAlive()) {
                stuck = true;
                continue;
            }
            QueueStats s = runners.get(i).stats();
            per.add(s);
            total.add(s);
        }
        String error = total.firstError;
        if (stuck) {
            error = "vCPU threads still running after the timeout of " + timeout.toMillis() + " ms";
        } else if (timedOut && error == null) {
            error = "workload did not finish within " + timeout.toMillis() + " ms and was stopped";
        }
        result = new WorkloadResult(workload, List.copyOf(per), total, error);
        return result;
    }
}
