package io.vblk.tools.jmh;

import io.vblk.aio.AioOptions;
import io.vblk.drivers.nullblk.NullDriver;
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

import java.util.concurrent.TimeUnit;

/**
 * The whole in-process request path, one operation per guest request: the benchmark thread is the
 * guest's vCPU (posts a 4 KiB read, kicks once per batch, reaps the used ring after the call
 * eventfd fires), one IoThread runs the virtio-blk device and the null driver behind it. Run with
 * {@code -prof gc}: {@code gc.alloc.rate.norm} is then the bytes allocated per request, over every
 * thread of the JVM (guest, IoThread, control loop).
 *
 * <p>Home thread: the JMH worker thread is the vCPU of queue 0. Run:
 * {@code scripts/jmh.sh RequestPath -prof gc}.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 1, jvmArgsAppend = {"--enable-native-access=ALL-UNNAMED"})
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
public class RequestPathBenchmark {
    /** Requests kept in flight. */
    @Param({"1", "32"})
    public int qd;

    /** interrupt: sleep on the call eventfd; poll: spin on the used ring (no call eventfd). */
    @Param({"interrupt", "poll"})
    public String guest;

    /** The null driver completes on the submit call stack (sync) or from a bottom half (async). */
    @Param({"sync"})
    public String completion;

    private static final int BLOCK = 4096;
    private static final long DEVICE_BYTES = 1L << 30;

    private InProcessBlk dev;
    private GuestBlkDriver drv;
    private GuestBlkQueue q;
    private boolean interrupts;
    /** Slots reaped and not yet re-posted, as a ring of indices. */
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
        NullDriver.Completion c = completion.equals("async") ? NullDriver.Completion.ASYNC : NullDriver.Completion.SYNC;
        dev = InProcessBlk.start(new NullDriver(DEVICE_BYTES, c), new BlkDeviceConfig().numQueues(1).queueSize(256), 1,
                AioOptions.DEFAULT);
        interrupts = guest.equals("interrupt");
        drv = GuestBlkDriver.attach(dev.transport(), GuestBlkDriver.Options.defaults().withSlots(qd)
                .withMaxDataBytes(BLOCK).withInterrupts(interrupts));
        q = drv.queue(0);
        q.onCompletion(onCompletion);
        ready = new int[Integer.highestOneBit(qd) * 2];
        readyMask = ready.length - 1;
        for (int i = 0; i < qd; i++) {
            post(q.acquire());
        }
        q.kick();
    }

    @Benchmark
    public int request() {
        if (head == tail) {
            refill();
        }
        BlkSlot s = q.slot(ready[head++ & readyMask]);
        post(s);
        if (head == tail) {
            // Every completion of this pass is re-posted: one kick for the batch.
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

    private void refill() {
        while (q.reap() == 0) {
            if (interrupts) {
                if (q.enableInterrupts()) {
                    q.awaitInterrupt(1000);
                }
            } else {
                Thread.onSpinWait();
            }
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        long end = System.nanoTime() + 5_000_000_000L;
        while (q.inFlight() > 0 && System.nanoTime() < end) {
            if (q.reap() == 0 && interrupts && q.enableInterrupts()) {
                q.awaitInterrupt(100);
            }
        }
        drv.close();
        dev.close();
    }
}
