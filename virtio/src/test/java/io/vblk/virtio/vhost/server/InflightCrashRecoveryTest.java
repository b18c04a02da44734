package io.vblk.virtio.vhost.server;

import io.vblk.guest.GuestRam;
import io.vblk.guest.GuestVring;
import io.vblk.virtio.queue.SplitQueue;
import io.vblk.virtio.queue.VirtioFeatures;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.lang.foreign.Arena;
import java.util.concurrent.TimeUnit;


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

    @Test
    void everyAcknowledgedWriteIsOnDiskAndEveryRequestCompletesOnceAcrossRandomCrashes() throws Exception {
        try (Arena arena = Arena.ofConfined();
             InflightBuffer buffer = InflightBuffer.create(1, QUEUE_SIZE)) {
            GuestRam ram = GuestRam.ofArena("guest", arena, GuestRam.DEFAULT_GPA_BASE, 1 << 20);
            GuestVring vring = GuestVring.allocate(ram, QUEUE_SIZE);
            int total = 20_000;
            boolean[] acked = new boolean[total];
            CrashRecoveryRun run = new CrashRecoveryRun("InflightCrashRecoveryTest", total, ram, vring) {
                @Override
                boolean room() {
                    return vring.inFlight() < DEPTH; // keep DEPTH writes in flight
                }

                @Override
                void chain(long p) {
                    vring.addBuffer(p, 16, false);
                }

                @Override
                Backend newBackend() {
                    // The base QEMU sends after a lost connection: the ring's used index.
                    return new Backend(new SplitQueue("crash"), new SplitInflightRecord(buffer.queueRegion(0), QUEUE_SIZE),
                            ram, vring.layout(), vring.usedIdx(), FEATURES, QUEUE_SIZE);
                }

                @Override
                int reap(boolean died) {
                    return vring.reap((token, len) -> {
                        completions[token]++;
                        acked[token] = true;
                    });
                }
            };
            run.run(CRASHES, 8, DEPTH, DEPTH);
            run.assertRecovered(vring.inFlight());
            System.out.println("InflightCrashRecoveryTest: " + run.crashes + " crashes (" + run.stepCrashes
                    + " inside the protocol), " + run.resubmitted + " requests resubmitted");
        }
    }
}
