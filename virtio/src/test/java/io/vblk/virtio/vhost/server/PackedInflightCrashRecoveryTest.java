package io.vblk.virtio.vhost.server;

import io.vblk.guest.GuestPackedVring;
import io.vblk.guest.GuestRam;
import io.vblk.virtio.queue.DescriptorChain;
import io.vblk.virtio.queue.PackedQueue;
import io.vblk.virtio.queue.QueueLayout;
import io.vblk.virtio.queue.QueueViolation;
import io.vblk.virtio.queue.SplitQueue;
import io.vblk.virtio.queue.VirtioFeatures;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Crash recovery through the INFLIGHT_SHMFD record's packed layout, at the queue level, as
 * {@link InflightCrashRecoveryTest} for split rings: a guest keeps writes in flight on a packed
 * ring, in chains of one to three descriptors that run across the ring's end; a back-end
 * ({@link PackedQueue} + {@link PackedInflightRecord} over one queue region of a real
 * {@link InflightBuffer} memfd) pops them, completes them out of order, and dies — at a random
 * instant between operations, or through the record's step hook at a random store of the
 * protocol. A new back-end (new queue, new record object) starts on the same ring and buffer with
 * the base QEMU sends for a packed ring after a lost back-end: the one of the first start (QEMU
 * cannot read a packed ring's indices from guest memory), so the resume point and the wrap
 * counters must come from the record. Checked: every write the guest saw acknowledged is on the
 * disk, every request completes exactly once (GuestPackedVring refuses a used descriptor for an
 * id not in flight), the device's used position always matches the driver's, nothing hangs.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class PackedInflightCrashRecoveryTest {
    private static final int QUEUE_SIZE = 64;
    private static final int MAX_DESCS = 3;
    private static final int CRASHES = 240;
    private static final long FEATURES = 1L << VirtioFeatures.VERSION_1 | 1L << VirtioFeatures.RING_PACKED;
    private static final ValueLayout.OfLong LE64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private static final class Died extends RuntimeException {
        Died() {
            super("back-end died", null, false, false);
        }
    }

    @Test
    void everyAcknowledgedWriteIsOnDiskAndEveryRequestCompletesOnceAcrossRandomCrashes() throws Exception {
        long seed = Long.getLong("vblk.test.seed", System.nanoTime());
        System.out.println("PackedInflightCrashRecoveryTest seed " + seed + " (-Dvblk.test.seed=" + seed + " to repeat)");
        Random rnd = new Random(seed);
        int total = 20_000;
        try (Arena arena = Arena.ofConfined();
             InflightBuffer buffer = InflightBuffer.create(1, QUEUE_SIZE, true)) {
            assertThat(buffer.packed()).isTrue();
            GuestRam ram = GuestRam.ofArena("guest", arena, GuestRam.DEFAULT_GPA_BASE, 1 << 20);
            GuestPackedVring vring = GuestPackedVring.allocate(ram, QUEUE_SIZE);
            long payloads = ram.allocate(16L * total, 16);
            long status = ram.allocate(QUEUE_SIZE, 8);
            long[] disk = new long[total];
            Arrays.fill(disk, -1);
            int[] completions = new int[total];
            int posted = 0;
            int reaped = 0;
            int crashes = 0;
            int stepCrashes = 0;
            int resubmitted = 0;
            int wrapsSeen = 0;
            int firstBase = vring.layout().nextAvailIdx();

            Backend be = new Backend(ram, vring, buffer, firstBase);
            while (reaped < total) {
                // Guest: as many writes as descriptors allow; each writes its sequence number to its own block.
                boolean any = false;
                while (posted < total && vring.freeDescriptors() >= MAX_DESCS && vring.inFlight() < QUEUE_SIZE) {
                    long p = payloads + 16L * posted;
                    MemorySegment m = ram.segment(p, 16);
                    m.set(LE64, 0, posted);
                    m.set(LE64, 8, 1_000_000L + posted);
                    vring.beginChain();
                    switch (rnd.nextInt(3)) {
                        case 0 -> vring.addBuffer(p, 16, false);
                        case 1 -> {
                            vring.addBuffer(p, 8, false);
                            vring.addBuffer(p + 8, 8, false);
                        }
                        default -> {
                            vring.addBuffer(p, 8, false);
                            vring.addBuffer(p + 8, 8, false);
                            vring.addBuffer(status + (posted % QUEUE_SIZE), 1, true);
                        }
                    }
                    vring.commitChain(posted);
                    posted++;
                    any = true;
                }
                if (any) {
                    vring.publish();
                }
                boolean crashNow = crashes < CRASHES && rnd.nextInt(2) == 0;
                int stepBudget = crashNow && rnd.nextBoolean() ? 1 + rnd.nextInt(12) : -1;
                int ops = crashNow && stepBudget < 0 ? rnd.nextInt(QUEUE_SIZE / 2) : QUEUE_SIZE;
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
                    // A new process: new objects over the same memory; QEMU re-sends the first start's base.
                    be = new Backend(ram, vring, buffer, firstBase);
                    resubmitted += be.record.recovered();
                }
                int usedBefore = vring.usedState();
                reaped += vring.reap((token, len) -> completions[token]++);
                if ((vring.usedState() & 0x8000) != (usedBefore & 0x8000)) {
                    wrapsSeen++;
                }
                if (!died && be.held == 0) {
                    // Nothing held: the device's next used slot is the driver's next one to read.
                    assertThat(be.vq.usedState()).as("device used state after %d reaped", reaped)
                            .isEqualTo(vring.usedState());
                }
            }
            assertThat(crashes).isGreaterThanOrEqualTo(200);
            assertThat(stepCrashes).isGreaterThanOrEqualTo(50);
            assertThat(resubmitted).isPositive();
            assertThat(wrapsSeen).as("the used wrap counter flipped many times").isGreaterThan(100);
            for (int i = 0; i < total; i++) {
                assertThat(completions[i]).as("completions of request %d", i).isEqualTo(1);
                assertThat(disk[i]).as("block %d of an acknowledged write", i).isEqualTo(1_000_000L + i);
            }
            assertThat(vring.inFlight()).isZero();
            System.out.println("PackedInflightCrashRecoveryTest: " + crashes + " crashes (" + stepCrashes
                    + " inside the protocol), " + resubmitted + " requests resubmitted, " + wrapsSeen + " wraps");
        }
    }

    /** A split queue refuses a packed record and a packed queue a split one: the layouts are not interchangeable. */
    @Test
    void aRecordOfTheOtherLayoutIsRefused() throws Exception {
        try (Arena arena = Arena.ofConfined();
             InflightBuffer packed = InflightBuffer.create(1, QUEUE_SIZE, true);
             InflightBuffer split = InflightBuffer.create(1, QUEUE_SIZE, false)) {
            GuestRam ram = GuestRam.ofArena("guest", arena, GuestRam.DEFAULT_GPA_BASE, 1 << 20);
            GuestPackedVring vring = GuestPackedVring.allocate(ram, QUEUE_SIZE);
            QueueLayout l = vring.layout();
            PackedQueue pq = new PackedQueue("p");
            assertThat(pq.start(new QueueLayout(l.size(), l.descAddr(), l.availAddr(), l.usedAddr(), l.nextAvailIdx(),
                    split.record(0)), ram.guestMemory(), FEATURES, QUEUE_SIZE)).isFalse();
            assertThat(pq.violation()).isEqualTo(QueueViolation.INFLIGHT_RECORD_INVALID);
            io.vblk.guest.GuestVring sv = io.vblk.guest.GuestVring.allocate(ram, QUEUE_SIZE);
            QueueLayout s = sv.layout();
            SplitQueue sq = new SplitQueue("s");
            assertThat(sq.start(new QueueLayout(s.size(), s.descAddr(), s.availAddr(), s.usedAddr(), s.nextAvailIdx(),
                    packed.record(0)), ram.guestMemory(), 1L << VirtioFeatures.VERSION_1, QUEUE_SIZE)).isFalse();
            assertThat(sq.violation()).isEqualTo(QueueViolation.INFLIGHT_RECORD_INVALID);
        }
    }

    /** One back-end life: a queue started on the ring with a fresh record object over the same region. */
    private static final class Backend {
        final PackedQueue vq = new PackedQueue("crash");
        final PackedInflightRecord record;
        final DescriptorChain chain = new DescriptorChain();
        final int[] ids = new int[QUEUE_SIZE];
        final long[] blocks = new long[QUEUE_SIZE];
        final long[] values = new long[QUEUE_SIZE];
        int held;

        Backend(GuestRam ram, GuestPackedVring vring, InflightBuffer buffer, int base) {
            record = new PackedInflightRecord(buffer.queueRegion(0), QUEUE_SIZE);
            QueueLayout l = vring.layout();
            boolean ok = vq.start(new QueueLayout(l.size(), l.descAddr(), l.availAddr(), l.usedAddr(), base, record),
                    ram.guestMemory(), FEATURES, QUEUE_SIZE);
            assertThat(ok).as("start: %s", vq.brokenReason()).isTrue();
        }

        /** Pops what is there, then executes and completes up to {@code ops} held requests in random order. */
        void run(Random rnd, int ops, long[] disk) {
            while (held < QUEUE_SIZE && vq.pop(chain)) {
                ids[held] = chain.head();
                blocks[held] = chain.readLe64(0);
                values[held] = chain.readLe64(8);
                held++;
            }
            assertThat(vq.broken()).as("%s", vq.brokenReason()).isFalse();
            for (int i = 0; i < ops && held > 0; i++) {
                int k = rnd.nextInt(held);
                disk[(int) blocks[k]] = values[k]; // the write reaches the disk before it is acknowledged
                int id = ids[k];
                held--;
                ids[k] = ids[held];
                blocks[k] = blocks[held];
                values[k] = values[held];
                vq.push(id, 0);
            }
        }
    }
}
