package io.vblk.guest;

import io.vblk.drivers.nullblk.NullDriver;
import io.vblk.virtio.blk.BlkDeviceConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.lang.management.ManagementFactory;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Home thread: the test thread plays the guest; the device runs on its IoThread.
 *
 * <p>The request path allocates nothing in steady state: after warm-up, the bytes allocated by the
 * guest's thread (this test thread) and by the device's IoThread over many requests stay within a
 * few hundred bytes in total (the JVM's own occasional allocations), i.e. 0 bytes per request. It
 * looks at up to 15 windows of 200 000 requests for a clean one, since a loaded machine compiles
 * later. Every system call on the path goes through a capture-free fast twin in {@code io.vblk.aio.sys}
 * (errno is captured only on failure): FFM's errno capture allocates whenever the JIT does not
 * inline it.
 */
@Timeout(300)
class RequestPathAllocationTest {
    private static final com.sun.management.ThreadMXBean THREADS =
            (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();

    private static final class Loop {
        final GuestBlkQueue q;
        final int[] ready;
        final int mask;
        int head;
        int tail;
        long x = 0x9E3779B97F4A7C15L;
        int failures;

        Loop(GuestBlkQueue q, int qd) {
            this.q = q;
            this.ready = new int[Integer.highestOneBit(qd) * 2];
            this.mask = ready.length - 1;
            q.onCompletion((s, status, len) -> {
                if (status != 0) {
                    failures++;
                }
                ready[tail++ & mask] = s.index();
            });
            for (int i = 0; i < qd; i++) {
                post(q.acquire());
            }
            q.kick();
        }

        void post(BlkSlot s) {
            x ^= x << 13;
            x ^= x >>> 7;
            x ^= x << 17;
            q.postRead(s, ((x >>> 1) % 8192) * 8, 4096, 1);
        }

        void run(long requests) {
            for (long n = 0; n < requests; n++) {
                while (head == tail) {
                    if (q.reap() == 0 && q.enableInterrupts()) {
                        q.awaitInterrupt(1000);
                    }
                }
                post(q.slot(ready[head++ & mask]));
                if (head == tail) {
                    q.kick();
                }
            }
        }

        void drain() {
            long end = System.nanoTime() + 10_000_000_000L;
            while (q.inFlight() > 0 && System.nanoTime() < end) {
                if (q.reap() == 0 && q.enableInterrupts()) {
                    q.awaitInterrupt(100);
                }
            }
        }
    }

    @ParameterizedTest
    @EnumSource(NullDriver.Completion.class)
    void steadyStateRequestsAllocateNothing(NullDriver.Completion mode) {
        steadyState(mode, GuestBlkDriver.Options.defaults().withSlots(32).withMaxDataBytes(4096));
    }

    /** The same on a packed ring (virtio 1.2 section 2.8): the device's PackedQueue and the guest's ring. */
    @Test
    void packedRingRequestsAllocateNothing() {
        steadyState(NullDriver.Completion.ASYNC, GuestBlkDriver.Options.defaults().withSlots(32).withMaxDataBytes(4096)
                .withFeatures(GuestFeatures.WITH_PACKED));
    }

    private void steadyState(NullDriver.Completion mode, GuestBlkDriver.Options options) {
        try (GuestRig rig = GuestRig.nullDevice(mode, new BlkDeviceConfig(), 1, options)) {
            assertThat(rig.q(0).ring().packed()).isEqualTo(GuestFeatures.has(options.wantFeatures(),
                    GuestFeatures.F_RING_PACKED));
            Loop loop = new Loop(rig.q(0), 32);
            long ioThread = rig.dev.ioThreads().get(0).thread().threadId();
            long guestThread = Thread.currentThread().threadId();
            loop.run(400_000); // warm-up
            // Steady state: once the JIT has compiled the path (escape analysis removes the
            // temporaries the interpreter allocates), a window of n requests allocates nothing. A
            // loaded machine compiles later, so look at up to 15 windows for one that is clean.
            long n = 200_000;
            long guestBytes = Long.MAX_VALUE;
            long deviceBytes = Long.MAX_VALUE;
            for (int window = 0; window < 15 && (guestBytes >= 1024 || deviceBytes >= 1024); window++) {
                long g0 = THREADS.getThreadAllocatedBytes(guestThread);
                long d0 = THREADS.getThreadAllocatedBytes(ioThread);
                loop.run(n);
                long g = THREADS.getThreadAllocatedBytes(guestThread) - g0;
                long d = THREADS.getThreadAllocatedBytes(ioThread) - d0;
                System.out.printf("%s window %d: guest %d bytes, IoThread %d bytes%n", mode, window, g, d);
                guestBytes = g;
                deviceBytes = d;
            }
            loop.drain();
            System.out.printf("%s: guest thread %d bytes, IoThread %d bytes over the last %d requests%n", mode,
                    guestBytes, deviceBytes, n);
            assertThat(loop.failures).isZero();
            assertThat(guestBytes).as("bytes allocated by the guest over %d requests", n).isLessThan(1024);
            assertThat(deviceBytes).as("bytes allocated by the IoThread over %d requests", n).isLessThan(1024);
        }
    }

    @Test
    void theWorkloadLoopAllocatesNothingEither() throws Exception {
        try (GuestRig rig = GuestRig.nullDevice(NullDriver.Completion.SYNC, new BlkDeviceConfig(), 1,
                GuestBlkDriver.Options.defaults().withSlots(16).withMaxDataBytes(4096))) {
            long ioThread = rig.dev.ioThreads().get(0).thread().threadId();
            long vcpuBytes = Long.MAX_VALUE;
            long deviceBytes = Long.MAX_VALUE;
            // Each run starts a fresh vCPU thread; the first runs warm the JIT up. A vCPU thread
            // allocates a few hundred bytes once (its syscall scratch area), never per request.
            for (int run = 0; run < 15 && (vcpuBytes >= 4096 || deviceBytes >= 1024); run++) {
                long d0 = THREADS.getThreadAllocatedBytes(ioThread);
                WorkloadResult r = WorkloadRun.start(rig.guest, Workload.of(Workload.Pattern.RANDRW)
                        .withRequests(200_000).withQueueDepth(16).withSeed(run)).await(java.time.Duration.ofSeconds(60));
                assertThat(r.error()).isNull();
                deviceBytes = THREADS.getThreadAllocatedBytes(ioThread) - d0;
                vcpuBytes = r.total().allocatedBytes;
                System.out.printf("workload run %d: vCPU thread %d bytes, IoThread %d bytes over %d requests%n", run,
                        vcpuBytes, deviceBytes, r.total().completed);
            }
            assertThat(vcpuBytes).isBetween(0L, 4095L);
            assertThat(deviceBytes).isLessThan(1024);
        }
    }
}
