package io.vblk.virtio.vhost.server;

import io.vblk.guest.GuestRam;
import io.vblk.guest.GuestRing;
import io.vblk.virtio.queue.DescriptorChain;
import io.vblk.virtio.queue.QueueLayout;
import io.vblk.virtio.queue.VirtQueue;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Random;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The workload and checks the inflight crash-recovery tests share, whatever the ring layout: a
 * guest keeps writes in flight (each its sequence number to its own block), a back-end pops
 * them, completes them out of order and dies — between operations, or through the record's step
 * hook at a store of the protocol — and a new back-end (new queue, new record object over the
 * same region) takes over. A subclass posts the guest's requests, builds a back-end life and
 * reaps, with its layout's own checks.
 *
 * <p>Home thread: the test thread (everything runs on it).
 */
abstract class CrashRecoveryRun {
    /** What a back-end dying at a store looks like to the test: the stack unwinds, the objects are dropped. */
    static final class Died extends RuntimeException {
        Died() {
            super("back-end died", null, false, false);
        }
    }

    /** One back-end life: a queue started on the rings with a fresh record object over the same region. */
    static final class Backend {
        final VirtQueue vq;
        final InflightRecord record;
        final DescriptorChain chain = new DescriptorChain();
        final int[] heads;
        final long[] blocks;
        final long[] values;
        int held;

        Backend(VirtQueue vq, InflightRecord record, GuestRam ram, QueueLayout l, int base, long features, int size) {
            this.vq = vq;
            this.record = record;
            heads = new int[size];
            blocks = new long[size];
            values = new long[size];
            boolean ok = vq.start(new QueueLayout(l.size(), l.descAddr(), l.availAddr(), l.usedAddr(), base, record),
                    ram.guestMemory(), features, size);
            assertThat(ok).as("start: %s", vq.brokenReason()).isTrue();
        }

        /** Pops what is there, then executes and completes up to {@code ops} held requests in random order. */
        void run(Random rnd, int ops, long[] disk) {
            while (held < heads.length && vq.pop(chain)) {
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

    private static final ValueLayout.OfLong LE64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    final Random rnd;
    final int total;
    final GuestRam ram;
    final GuestRing ring;
    final long payloads;
    final long[] disk;
    final int[] completions;
    int posted;
    int reaped;
    int crashes;
    int stepCrashes;
    int resubmitted;
    Backend be;

    /**
     * A run of {@code total} writes on {@code ring} over {@code ram}; the seed is printed under
     * {@code name} so a failure can be repeated.
     */
    CrashRecoveryRun(String name, int total, GuestRam ram, GuestRing ring) {
        long seed = Long.getLong("vblk.test.seed", System.nanoTime());
        System.out.println(name + " seed " + seed + " (-Dvblk.test.seed=" + seed + " to repeat)");
        this.rnd = new Random(seed);
        this.total = total;
        this.ram = ram;
        this.ring = ring;
        payloads = ram.allocate(16L * total, 16);
        disk = new long[total];
        Arrays.fill(disk, -1);
        completions = new int[total];
    }

    /** Whether the guest may post one more write now. */
    abstract boolean room();

    /** Adds the descriptors of the write whose 16-byte payload (block, value) is at {@code p}. */
    abstract void chain(long p);

    /** The guest: posts what it may (each write its sequence number to its own block) and publishes. */
    void post() {
        boolean any = false;
        while (posted < total && room()) {
            long p = payloads + 16L * posted;
            MemorySegment m = ram.segment(p, 16);
            m.set(LE64, 0, posted);
            m.set(LE64, 8, 1_000_000L + posted);
            ring.beginChain();
            chain(p);
            ring.commitChain(posted);
            posted++;
            any = true;
        }
        if (any) {
            ring.publish();
        }
    }

    /** A new back-end life. */
    abstract Backend newBackend();

    /** The guest reaps; returns how many completed. {@code died}: the back-end just died at a store. */
    abstract int reap(boolean died);

    /**
     * Runs until every write completed, with up to {@code maxCrashes} crashes; a crash at a store
     * comes after 1 to {@code maxStepBudget} of them, one between operations after fewer than
     * {@code maxCrashOps} completions.
     */
    void run(int maxCrashes, int maxStepBudget, int maxCrashOps, int ops) {
        be = newBackend();
        while (reaped < total) {
            post();
            boolean crashNow = crashes < maxCrashes && rnd.nextInt(2) == 0;
            int stepBudget = crashNow && rnd.nextBoolean() ? 1 + rnd.nextInt(maxStepBudget) : -1;
            int n = crashNow && stepBudget < 0 ? rnd.nextInt(maxCrashOps) : ops;
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
                be.run(rnd, n, disk);
            } catch (Died d) {
                died = true;
                stepCrashes++;
            }
            if (crashNow || died) {
                crashes++;
                // A new process: new objects over the same shared memory.
                be = newBackend();
                resubmitted += be.record.recovered();
            }
            reaped += reap(died);
        }
    }

    /** Many crashes, many inside the protocol, some resubmissions; every write completed once and on the disk. */
    void assertRecovered(int inFlight) {
        assertThat(crashes).isGreaterThanOrEqualTo(200);
        assertThat(stepCrashes).isGreaterThanOrEqualTo(50);
        assertThat(resubmitted).isPositive();
        for (int i = 0; i < total; i++) {
            assertThat(completions[i]).as("completions of request %d", i).isEqualTo(1);
            assertThat(disk[i]).as("block %d of an acknowledged write", i).isEqualTo(1_000_000L + i);
        }
        assertThat(inFlight).isZero();
    }
}
