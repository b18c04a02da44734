package io.vblk.virtio.vhost.server;

import io.vblk.guest.GuestPackedVring;
import io.vblk.guest.GuestRam;
import io.vblk.virtio.queue.PackedQueue;
import io.vblk.virtio.queue.QueueLayout;
import io.vblk.virtio.queue.QueueViolation;
import io.vblk.virtio.queue.SplitQueue;
import io.vblk.virtio.queue.VirtioFeatures;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.lang.foreign.Arena;
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

    @Test
    void everyAcknowledgedWriteIsOnDiskAndEveryRequestCompletesOnceAcrossRandomCrashes() throws Exception {
        try (Arena arena = Arena.ofConfined();
             InflightBuffer buffer = InflightBuffer.create(1, QUEUE_SIZE, true)) {
            assertThat(buffer.packed()).isTrue();
            GuestRam ram = GuestRam.ofArena("guest", arena, GuestRam.DEFAULT_GPA_BASE, 1 << 20);
            GuestPackedVring vring = GuestPackedVring.allocate(ram, QUEUE_SIZE);
            int total = 20_000;
            long status = ram.allocate(QUEUE_SIZE, 8);
            int[] wrapsSeen = {0};
            int firstBase = vring.layout().nextAvailIdx();
            CrashRecoveryRun run = new CrashRecoveryRun("PackedInflightCrashRecoveryTest", total, ram, vring) {
                @Override
                boolean room() {
                    return vring.freeDescriptors() >= MAX_DESCS && vring.inFlight() < QUEUE_SIZE;
                }

                @Override
                void chain(long p) {
                    // One to three descriptors, so chains run across the ring's end.
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
                }

                @Override
                Backend newBackend() {
                    // QEMU re-sends the first start's base.
                    return new Backend(new PackedQueue("crash"), new PackedInflightRecord(buffer.queueRegion(0), QUEUE_SIZE),
                            ram, vring.layout(), firstBase, FEATURES, QUEUE_SIZE);
                }

                @Override
                int reap(boolean died) {
                    int usedBefore = vring.usedState();
                    int n = vring.reap((token, len) -> completions[token]++);
                    if ((vring.usedState() & 0x8000) != (usedBefore & 0x8000)) {
                        wrapsSeen[0]++;
                    }
                    if (!died && be.held == 0) {
                        // Nothing held: the device's next used slot is the driver's next one to read.
                        assertThat(((PackedQueue) be.vq).usedState()).as("device used state after %d reaped", reaped + n)
                                .isEqualTo(vring.usedState());
                    }
                    return n;
                }
            };
            run.run(CRASHES, 12, QUEUE_SIZE / 2, QUEUE_SIZE);
            run.assertRecovered(vring.inFlight());
            assertThat(wrapsSeen[0]).as("the used wrap counter flipped many times").isGreaterThan(100);
            System.out.println("PackedInflightCrashRecoveryTest: " + run.crashes + " crashes (" + run.stepCrashes
                    + " inside the protocol), " + run.resubmitted + " requests resubmitted, " + wrapsSeen[0] + " wraps");
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
}
