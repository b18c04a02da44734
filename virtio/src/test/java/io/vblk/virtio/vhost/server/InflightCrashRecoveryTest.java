package io.vblk.virtio.vhost.server;

import io.vblk.guest.GuestRam;
import io.vblk.guest.GuestVring;
import io.vblk.virtio.queue.DescriptorChain;
import io.vblk.virtio.queue.QueueLayout;
import io.vblk.virtio.queue.SplitQueue;
import io.vblk.virtio.queue.VirtioFeatures;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Crash recovery through the INFLIGHT_SHMFD record, at the queue level: a guest keeps 32 writes
 * in flight on a split ring; a back-end ({@link SplitQueue} + {@link SplitInflightRecord} over
 * one queue region of a real {@link InflightBuffer} memfd) pops them and completes them out of
 * order, and dies — at a random instant between operations, or through the record's step hook
 * at a random store of the protocol. A new back-end (new queue, new record object: nothing of the
 * dead one's heap survives) starts on the same rings and buffer with the base QEMU sends after a
 * lost connection (the ring's used index), resubmits what the record lists and goes on.
 * Checked: every write the guest saw acknowledged is on the disk, every request posted completes
 * exactly once (GuestVring refuses a used element for a head not in flight), and nothing hangs.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class InflightCrashRecoveryTest {
    private static final int QUEUE_SIZE = 64;
    private static final int DEPTH = 32;
    private static final int CRASHES = 240;
    private static final long FEATURES = 1L << VirtioFeatures.VERSION_1;

    /** What a back-end dying at a store looks like to the test: the stack unwinds, the objects are dropped. */
    private static final class Died extends RuntimeException {
        Died() {
            super("back-end died", null, false, false);
        }
    }

    @Test
    void everyAcknowledgedWriteIsOnDiskAndEveryRequestCompletesOnceAcrossRandomCrashes() throws Exception {
        long seed = Long.getLong("vblk.test.seed", System.nanoTime());
        System.out.println("InflightCrashRecoveryTest seed " + seed + " (-Dvblk.test.seed=" + seed + " to repeat)");
        Random rnd = new Random(seed);
        int total = 20_000;
        try (Arena arena = Arena.ofConfined();
             InflightBuffer buffer = InflightBuffer.create(1, QUEUE_SIZE)) {
            GuestRam ram = GuestRam.ofArena("guest", arena, GuestRam.DEFAULT_GPA_BASE, 1 << 20);
            GuestVring vring = GuestVring.allocate(ram, QUEUE_SIZE);
            long payloads = ram.allocate(16L * total, 16);
            long[] disk = new long[total];
            Arrays.fill(disk, -1);
            int[] completions = new int[total];
            boolean[] acked = new boolean[total];
            int posted = 0;
            int reaped = 0;
            int crashes = 0;
            int stepCrashes = 0;
            int resubmitted = 0;

            Backend be = new Backend(ram, vring, buffer, vring.usedIdx());
            while (reaped < total) {
                // Guest: keep DEPTH writes in flight; each writes its own sequence number to its own block.
                boolean any = false;
                while (posted < total && vring.inFlight() < DEPTH) {
                    long p = payloads + 16L * posted;
                    MemorySegment m = ram.segment(p, 16);
                    m.set(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN), 0, posted);
                    m.set(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN), 8, 1_000_000L + posted);
                    vring.beginChain();
                    vring.addBuffer(p, 16, false);
                    vring.commitChain(posted);
                    posted++;
                    any = true;
                }
                if (any) {
                    vring.publish();
                }
                // Back-end: a few operations, possibly dying.
                boolean crashNow = crashes < CRASHES && rnd.nextInt(2) == 0;
                int stepBudget = crashNow && rnd.nextBoolean() ? 1 + rnd.nextInt(8) : -1;
                int ops = crashNow && stepBudget < 0 ? rnd.nextInt(DEPTH) : DEPTH;
                if (stepBudget > 0) {
                    int[] left = {stepBudget};
                    be.record.hook = s -> {
                        if (--left[0] == 0) {
                            throw new Died();
                        }
                    };
                }
                boolean died = false;
                try {
                    be.run(rnd, ops, disk);
                } catch (Died d) {
                    died = true;
                    stepCrashes++;
                }
                if (crashNow || died) {
                    crashes++;
                    // A new process: new objects over the same shared memory; base = the ring's used index.
                    be = new Backend(ram, vring, buffer, vring.usedIdx());
                    resubmitted += be.record.recovered();
                }
                reaped += vring.reap((token, len) -> {
                    completions[token]++;
                    acked[token] = true;
                });
            }
            assertThat(crashes).isGreaterThanOrEqualTo(200);
            assertThat(stepCrashes).isGreaterThanOrEqualTo(50);
            assertThat(resubmitted).isPositive();
            for (int i = 0; i < total; i++) {
                assertThat(completions[i]).as("completions of request %d", i).isEqualTo(1);
                assertThat(disk[i]).as("block %d of an acknowledged write", i).isEqualTo(1_000_000L + i);
            }
            assertThat(vring.inFlight()).isZero();
            System.out.println("InflightCrashRecoveryTest: " + crashes + " crashes (" + stepCrashes
                    + " inside the protocol), " + resubmitted + " requests resubmitted");
        }
    }

    /** One back-end life: a queue started on the rings with a fresh record object over the same region. */
    private static final class Backend {
        final SplitQueue vq = new SplitQueue("crash");
        final SplitInflightRecord record;
        final DescriptorChain chain = new DescriptorChain();
        final int[] heads = new int[QUEUE_SIZE];
        final long[] blocks = new long[QUEUE_SIZE];
        final long[] values = new long[QUEUE_SIZE];
        int held;

        Backend(GuestRam ram, GuestVring vring, InflightBuffer buffer, int base) {
            record = new SplitInflightRecord(buffer.queueRegion(0), QUEUE_SIZE);
            QueueLayout l = vring.layout();
            boolean ok = vq.start(new QueueLayout(l.size(), l.descAddr(), l.availAddr(), l.usedAddr(), base, record),
                    ram.guestMemory(), FEATURES, QUEUE_SIZE);
            assertThat(ok).as("start: %s", vq.brokenReason()).isTrue();
        }

        /** Pops what is there, then executes and completes up to {@code ops} held requests in random order. */
        void run(Random rnd, int ops, long[] disk) {
            while (held < QUEUE_SIZE && vq.pop(chain)) {
                heads[held] = chain.head();
                blocks[held] = chain.readLe64(0);
                values[held] = chain.readLe64(8);
                held++;
            }
            assertThat(vq.broken()).as("%s", vq.brokenReason()).isFalse();
            for (int i = 0; i < ops && held > 0; i++) {
                int k = rnd.nextInt(held);
                disk[(int) blocks[k]] = values[k]; // the write reaches the disk before it is acknowledged
                int head = heads[k];
                held--;
                heads[k] = heads[held];
                blocks[k] = blocks[held];
                values[k] = values[held];
                vq.push(head, 0);
            }
        }
    }
}
