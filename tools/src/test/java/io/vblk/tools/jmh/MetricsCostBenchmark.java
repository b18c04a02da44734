package io.vblk.tools.jmh;

import io.vblk.aio.AioOptions;
import io.vblk.aio.IoThread;
import io.vblk.drivers.nullblk.NullDriver;
import io.vblk.tools.metrics.MetricsOptions;
import io.vblk.tools.metrics.MetricsServer;
import io.vblk.tools.metrics.VblkMetrics;
import io.vblk.virtio.blk.BlkDeviceConfig;
import io.vblk.guest.BlkSlot;
import io.vblk.guest.GuestBlkDriver;
import io.vblk.guest.GuestBlkQueue;
import io.vblk.guest.InProcessBlk;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.concurrent.TimeUnit;

/**
 * The cost of metrics on the in-process request path (null driver, 4 KiB reads, as
 * {@link RequestPathBenchmark}): {@code metrics=off} runs the device with nothing bound;
 * {@code metrics=on} binds the device, the loops, the JVM binders, serves /metrics and scrapes it
 * every {@code scrapeMs} from another thread (far more often than Prometheus would), so the
 * scrape thread's reads of the components' fields and its CPU compete with the request path.
 *
 * <p>Home thread: the JMH worker thread is the vCPU of queue 0. Run:
 * {@code scripts/jmh.sh MetricsCost}.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED"})
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
public class MetricsCostBenchmark {
    @Param({"off", "on"})
    public String metrics;

    @Param({"32"})
    public int qd;

    /** Scrape period with metrics on. */
    @Param({"200"})
    public int scrapeMs;

    private static final int BLOCK = 4096;
    private static final long DEVICE_BYTES = 1L << 30;

    private InProcessBlk dev;
    private GuestBlkDriver drv;
    private GuestBlkQueue q;
    private VblkMetrics registry;
    private MetricsServer server;
    private Thread scraper;
    private volatile boolean stop;
    private int[] ready;
    private int readyMask;
    private int head;
    private int tail;
    private long rnd = 0x9E3779B97F4A7C15L;
    private final GuestBlkQueue.Completion onCompletion = (slot, status, len) -> {
        if (status != 0) {
            throw new IllegalStateException("request failed with status " + status);
        }
        ready[tail++ & readyMask] = slot.index();
    };

    @Setup(Level.Trial)
    public void setUp() {
        dev = InProcessBlk.start(new NullDriver(DEVICE_BYTES, NullDriver.Completion.SYNC),
                new BlkDeviceConfig().numQueues(1).queueSize(256), 1, AioOptions.DEFAULT);
        if (metrics.equals("on")) {
            registry = new VblkMetrics();
            registry.bindJvm();
            registry.bindLoop(dev.control().ctx());
            for (IoThread t : dev.ioThreads()) {
                registry.bindLoop(t.ctx());
            }
            registry.bindDevice("vda", dev.device());
            server = MetricsServer.start(MetricsOptions.parseAddress("127.0.0.1:0"), registry);
            scraper = new Thread(this::scrapeLoop, "bench-scraper");
            scraper.setDaemon(true);
            scraper.start();
        }
        drv = GuestBlkDriver.attach(dev.transport(), GuestBlkDriver.Options.defaults().withSlots(qd)
                .withMaxDataBytes(BLOCK));
        q = drv.queue(0);
        q.onCompletion(onCompletion);
        ready = new int[Integer.highestOneBit(qd) * 2];
        readyMask = ready.length - 1;
        for (int i = 0; i < qd; i++) {
            post(q.acquire());
        }
        q.kick();
    }

    private void scrapeLoop() {
        HttpClient http = HttpClient.newHttpClient();
        HttpRequest req = HttpRequest.newBuilder(URI.create(server.url())).build();
        while (!stop) {
            try {
                http.send(req, HttpResponse.BodyHandlers.discarding());
                Thread.sleep(scrapeMs); // the scrape period of this load generator, not a wait for a result
            } catch (InterruptedException e) {
                return;
            } catch (Exception e) {
                throw new IllegalStateException("scrape failed", e);
            }
        }
    }

    @Benchmark
    public int request() {
        if (head == tail) {
            while (q.reap() == 0) {
                if (q.enableInterrupts()) {
                    q.awaitInterrupt(1000);
                }
            }
        }
        BlkSlot s = q.slot(ready[head++ & readyMask]);
        post(s);
        if (head == tail) {
            q.kick();
        }
        return s.index();
    }

    private void post(BlkSlot s) {
        long x = rnd;
        x ^= x << 13;
        x ^= x >>> 7;
        x ^= x << 17;
        rnd = x;
        long sector = ((x >>> 1) % (DEVICE_BYTES / BLOCK)) * (BLOCK / 512);
        q.postRead(s, sector, BLOCK, 1);
    }

    @TearDown(Level.Trial)
    public void tearDown() throws InterruptedException {
        stop = true;
        if (scraper != null) {
            scraper.interrupt();
            scraper.join(5000);
        }
        long end = System.nanoTime() + 5_000_000_000L;
        while (q.inFlight() > 0 && System.nanoTime() < end) {
            if (q.reap() == 0 && q.enableInterrupts()) {
                q.awaitInterrupt(100);
            }
        }
        drv.close();
        if (server != null) {
            server.close();
            registry.close();
        }
        dev.close();
    }
}
