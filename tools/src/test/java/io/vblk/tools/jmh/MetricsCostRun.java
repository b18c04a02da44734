package io.vblk.tools.jmh;

import io.vblk.aio.AioOptions;
import io.vblk.drivers.nullblk.NullDriver;
import io.vblk.tools.metrics.MetricsOptions;
import io.vblk.tools.metrics.MetricsServer;
import io.vblk.tools.metrics.VblkMetrics;
import io.vblk.virtio.blk.BlkDeviceConfig;
import io.vblk.guest.BlkSlot;
import io.vblk.guest.GuestBlkDriver;
import io.vblk.guest.GuestBlkQueue;
import io.vblk.guest.InProcessBlk;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * Metrics on vs off on the null driver, as alternating rounds in one JVM (the same warmed-up
 * code): each round sends a fixed number of 4 KiB reads at queue depth 32 through the guest
 * harness and measures wall time and the IoThread's CPU time per request. With metrics on, the
 * device, loops and JVM are bound and /metrics is scraped every 200 ms. CPU per request on the
 * IoThread is the figure that other load on the machine disturbs least.
 *
 * <p>Home thread: main is the guest's vCPU. Run: {@code java -cp ... io.vblk.tools.jmh.MetricsCostRun [rounds]
 * [requestsPerRound]} (see docs/METRICS.md).
 */
public final class MetricsCostRun {
    private static final int BLOCK = 4096;
    private static final long DEVICE_BYTES = 1L << 30;
    private static final int QD = 32;

    private MetricsCostRun() {
    }

    public static void main(String[] args) throws Exception {
        int rounds = args.length > 0 ? Integer.parseInt(args[0]) : 10;
        long perRound = args.length > 1 ? Long.parseLong(args[1]) : 2_000_000;
        ThreadMXBean mx = ManagementFactory.getThreadMXBean();
        InProcessBlk dev = InProcessBlk.start(new NullDriver(DEVICE_BYTES, NullDriver.Completion.SYNC),
                new BlkDeviceConfig().numQueues(1).queueSize(256), 1, AioOptions.DEFAULT);
        GuestBlkDriver drv = GuestBlkDriver.attach(dev.transport(),
                GuestBlkDriver.Options.defaults().withSlots(QD).withMaxDataBytes(BLOCK));
        Guest g = new Guest(drv.queue(0));
        long ioTid = dev.ioThreads().get(0).thread().threadId();
        g.run(perRound); // warm-up
        List<double[]> off = new ArrayList<>();
        List<double[]> on = new ArrayList<>();
        for (int r = 0; r < rounds; r++) {
            for (boolean metrics : new boolean[] {r % 2 == 0, r % 2 != 0}) {
                VblkMetrics m = null;
                MetricsServer s = null;
                Scraper sc = null;
                if (metrics) {
                    m = new VblkMetrics();
                    m.bindJvm();
                    m.bindInProcess(dev.device(), dev.loops());
                    s = MetricsServer.start(MetricsOptions.parseAddress("127.0.0.1:0"), m);
                    sc = new Scraper(s.url());
                    sc.start();
                }
                long cpu0 = mx.getThreadCpuTime(ioTid);
                long t0 = System.nanoTime();
                g.run(perRound);
                long wall = System.nanoTime() - t0;
                long cpu = mx.getThreadCpuTime(ioTid) - cpu0;
                if (metrics) {
                    sc.halt();
                    s.close();
                    m.close();
                }
                double[] row = {perRound * 1e9 / wall, (double) cpu / perRound};
                (metrics ? on : off).add(row);
                System.out.printf("round %d metrics=%-3s %10.0f req/s  IoThread %6.1f ns/req%n", r, metrics ? "on" : "off",
                        row[0], row[1]);
            }
        }
        g.drain();
        drv.close();
        dev.close();
        System.out.printf("median metrics=off: %10.0f req/s  IoThread %6.1f ns/req%n", median(off, 0), median(off, 1));
        System.out.printf("median metrics=on:  %10.0f req/s  IoThread %6.1f ns/req%n", median(on, 0), median(on, 1));
        System.out.printf("difference: throughput %+.2f%%, IoThread CPU per request %+.2f%%%n",
                100 * (median(on, 0) / median(off, 0) - 1), 100 * (median(on, 1) / median(off, 1) - 1));
    }

    private static double median(List<double[]> rows, int col) {
        List<Double> v = new ArrayList<>();
        for (double[] r : rows) {
            v.add(r[col]);
        }
        Collections.sort(v);
        int n = v.size();
        return n % 2 == 1 ? v.get(n / 2) : (v.get(n / 2 - 1) + v.get(n / 2)) / 2;
    }

    /** Scrapes every 200 ms until halted. */
    private static final class Scraper extends Thread {
        private final HttpRequest req;
        private final HttpClient http = HttpClient.newHttpClient();
        private volatile boolean stop;

        Scraper(String url) {
            super("cost-scraper");
            setDaemon(true);
            req = HttpRequest.newBuilder(URI.create(url)).build();
        }

        @Override
        public void run() {
            while (!stop) {
                try {
                    http.send(req, HttpResponse.BodyHandlers.discarding());
                    Thread.sleep(200); // the scrape period of this load generator
                } catch (InterruptedException e) {
                    return;
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            }
        }

        void halt() throws InterruptedException {
            stop = true;
            interrupt();
            join(5000);
        }
    }

    /** A closed-loop guest: keeps QD reads in flight, one kick per re-posted batch. */
    private static final class Guest {
        private final GuestBlkQueue q;
        private final int[] ready = new int[QD * 2];
        private int head;
        private int tail;
        private long rnd = 0x9E3779B97F4A7C15L;
        private boolean started;

        Guest(GuestBlkQueue q) {
            this.q = q;
            q.onCompletion((slot, status, len) -> {
                if (status != 0) {
                    throw new IllegalStateException("status " + status);
                }
                ready[tail++ & (ready.length - 1)] = slot.index();
            });
        }

        void run(long n) {
            if (!started) {
                started = true;
                for (int i = 0; i < QD; i++) {
                    post(q.acquire());
                }
                q.kick();
            }
            for (long i = 0; i < n; i++) {
                while (head == tail) {
                    if (q.reap() == 0 && q.enableInterrupts()) {
                        q.awaitInterrupt(1000);
                    }
                }
                post(q.slot(ready[head++ & (ready.length - 1)]));
                if (head == tail) {
                    q.kick();
                }
            }
        }

        void drain() {
            long end = System.nanoTime() + 5_000_000_000L;
            while (q.inFlight() > 0 && System.nanoTime() < end) {
                if (q.reap() == 0 && q.enableInterrupts()) {
                    q.awaitInterrupt(100);
                }
            }
        }

        private void post(BlkSlot s) {
            long x = rnd;
            x ^= x << 13;
            x ^= x >>> 7;
            x ^= x << 17;
            rnd = x;
            q.postRead(s, ((x >>> 1) % (DEVICE_BYTES / BLOCK)) * (BLOCK / 512), BLOCK, 1);
        }
    }
}
