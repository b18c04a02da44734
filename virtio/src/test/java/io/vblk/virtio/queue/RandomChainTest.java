package io.vblk.virtio.queue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

import static io.vblk.virtio.queue.DescriptorLayout.F_INDIRECT;
import static io.vblk.virtio.queue.DescriptorLayout.F_NEXT;
import static io.vblk.virtio.queue.DescriptorLayout.F_WRITE;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

/**
 * Seeded random chains. Each test prints its seed; rerun one with {@code -Dvblk.seed=N}.
 */
@Timeout(30)
class RandomChainTest {
    static final long FEATURES = VirtioFeatures.bit(VirtioFeatures.VERSION_1)
            | VirtioFeatures.bit(VirtioFeatures.RING_INDIRECT_DESC) | VirtioFeatures.bit(VirtioFeatures.RING_EVENT_IDX);

    static long seed(String test) {
        long seed = Long.getLong("vblk.seed", System.nanoTime());
        System.out.println(test + ": seed " + seed + " (rerun with -Dvblk.seed=" + seed + ")");
        return seed;
    }

    record Buf(long gpa, long len, boolean writable) {
    }

    /** Valid chains of random shape pop as exactly the host buffers the guest described. */
    @Test
    void validRandomChainsPopAsDescribed() {
        long seed = seed("validRandomChainsPopAsDescribed");
        SplittableRandom rnd = new SplittableRandom(seed);
        int size = 64;
        try (QueueGuest g = new QueueGuest(size)) {
            SplitQueue q = new SplitQueue("rq");
            assertThat(q.start(g.v.layout(), g.memory, FEATURES, SplitQueue.MAX_SIZE)).isTrue();
            DescriptorChain c = new DescriptorChain();
            long tableArea = g.alloc(16 * 64);
            for (int round = 0; round < 2000; round++) {
                int readable = rnd.nextInt(0, 5);
                int writable = rnd.nextInt(readable == 0 ? 1 : 0, 5);
                List<Buf> bufs = new ArrayList<>();
                for (int i = 0; i < readable + writable; i++) {
                    long len = rnd.nextInt(0, 6000);
                    long gpa;
                    if (rnd.nextInt(4) == 0) {
                        gpa = QueueGuest.R1 - rnd.nextLong(1, Math.max(2, len)); // crosses into region 1
                    } else {
                        gpa = QueueGuest.R1 + rnd.nextLong(0, QueueGuest.REGION_SIZE - len);
                    }
                    bufs.add(new Buf(gpa, len, i >= readable));
                }
                // Lay out: k direct descriptors at shuffled free indexes, the rest in an indirect table.
                int direct = rnd.nextBoolean() ? bufs.size() : rnd.nextInt(0, bufs.size());
                int[] slots = shuffled(rnd, size);
                for (int i = 0; i < direct; i++) {
                    Buf b = bufs.get(i);
                    boolean last = i == bufs.size() - 1;
                    int flags = (b.writable ? F_WRITE : 0) | (last ? 0 : F_NEXT);
                    g.v.forgeDescriptor(slots[i], b.gpa, b.len, flags, last ? 0 : slots[i + 1]);
                }
                if (direct < bufs.size()) {
                    int n = bufs.size() - direct;
                    int[] ent = shuffled(rnd, n);
                    for (int i = 0; i < n; i++) {
                        Buf b = bufs.get(direct + i);
                        boolean last = i == n - 1;
                        g.v.forgeIndirect(tableArea, ent[i], b.gpa, b.len, (b.writable ? F_WRITE : 0) | (last ? 0 : F_NEXT),
                                last ? 0 : ent[i + 1]);
                    }
                    // The chain enters the table at its entry 0, so entry 0 must be the first: swap.
                    if (ent[0] != 0) {
                        relabelFirstToZero(g, tableArea, ent, bufs, direct);
                    }
                    g.v.forgeDescriptor(slots[direct], tableArea, 16L * n, F_INDIRECT, 0);
                }
                int head = slots[0];
                g.v.forgeAvail(head);
                if (!q.pop(c)) {
                    fail("seed " + seed + " round " + round + ": " + q.brokenReason());
                }
                assertThat(c.head()).isEqualTo(head);
                List<long[]> expect = new ArrayList<>();
                long rb = 0;
                long wb = 0;
                for (Buf b : bufs) {
                    if (b.len == 0) {
                        continue;
                    }
                    if (b.gpa < QueueGuest.R1 && b.gpa + b.len > QueueGuest.R1) {
                        expect.add(new long[] {g.host(b.gpa), QueueGuest.R1 - b.gpa});
                        expect.add(new long[] {g.host(QueueGuest.R1), b.gpa + b.len - QueueGuest.R1});
                    } else {
                        expect.add(new long[] {g.host(b.gpa), b.len});
                    }
                    if (b.writable) {
                        wb += b.len;
                    } else {
                        rb += b.len;
                    }
                }
                assertThat(c.segments()).as("seed %d round %d", seed, round).isEqualTo(expect.size());
                for (int i = 0; i < expect.size(); i++) {
                    assertThat(c.address(i)).as("seed %d round %d seg %d", seed, round, i).isEqualTo(expect.get(i)[0]);
                    assertThat(c.length(i)).as("seed %d round %d seg %d", seed, round, i).isEqualTo(expect.get(i)[1]);
                }
                assertThat(c.readableBytes()).isEqualTo(rb);
                assertThat(c.writableBytes()).isEqualTo(wb);
                q.push(head, 0);
            }
        }
    }

    /** The chain starts at entry 0 of an indirect table: rewrite so the first buffer sits there. */
    private static void relabelFirstToZero(QueueGuest g, long table, int[] ent, List<Buf> bufs, int direct) {
        int n = ent.length;
        int pos0 = -1;
        for (int i = 0; i < n; i++) {
            if (ent[i] == 0) {
                pos0 = i;
            }
        }
        int old = ent[0];
        ent[pos0] = old;
        ent[0] = 0;
        for (int i = 0; i < n; i++) {
            Buf b = bufs.get(direct + i);
            boolean last = i == n - 1;
            g.v.forgeIndirect(table, ent[i], b.gpa, b.len, (b.writable ? F_WRITE : 0) | (last ? 0 : F_NEXT),
                    last ? 0 : ent[i + 1]);
        }
    }

    private static int[] shuffled(SplittableRandom rnd, int n) {
        int[] a = new int[n];
        for (int i = 0; i < n; i++) {
            a[i] = i;
        }
        for (int i = n - 1; i > 0; i--) {
            int j = rnd.nextInt(i + 1);
            int t = a[i];
            a[i] = a[j];
            a[j] = t;
        }
        return a;
    }

    /**
     * Random garbage in the descriptor table and avail ring: every pop either yields a chain whose
     * buffers all lie in guest memory, or breaks the queue with a named violation; it never throws
     * and never runs away.
     */
    @Test
    void garbageNeverEscapesGuestMemory() {
        long seed = seed("garbageNeverEscapesGuestMemory");
        SplittableRandom rnd = new SplittableRandom(seed);
        int size = 16;
        int broken = 0;
        int popped = 0;
        for (int round = 0; round < 3000; round++) {
            try (QueueGuest g = new QueueGuest(size)) {
                SplitQueue q = new SplitQueue("fz");
                assertThat(q.start(g.v.layout(), g.memory, FEATURES, SplitQueue.MAX_SIZE)).isTrue();
                long table = g.alloc(16 * 8);
                for (int i = 0; i < size; i++) {
                    g.v.forgeDescriptor(i, randomAddr(rnd), rnd.nextInt(0, 9000), rnd.nextInt(0, 8), rnd.nextInt(0, size + 2));
                }
                for (int i = 0; i < 8; i++) {
                    g.v.forgeIndirect(table, i, randomAddr(rnd), rnd.nextInt(0, 9000), rnd.nextInt(0, 8), rnd.nextInt(0, 10));
                }
                // Some descriptors point at the indirect table with a plausible length.
                if (rnd.nextBoolean()) {
                    g.v.forgeDescriptor(rnd.nextInt(size), table, 16L * rnd.nextInt(0, 9) + rnd.nextInt(0, 2) * rnd.nextInt(16),
                            F_INDIRECT | rnd.nextInt(0, 2), rnd.nextInt(size));
                }
                int posts = rnd.nextInt(1, size + 1);
                for (int i = 0; i < posts; i++) {
                    g.v.forgeAvail(rnd.nextInt(0, size + 1));
                }
                DescriptorChain c = new DescriptorChain();
                while (q.pop(c)) {
                    popped++;
                    for (int i = 0; i < c.segments(); i++) {
                        long a = c.address(i);
                        long len = c.length(i);
                        assertThat(inside(g, a, len)).as("seed %d round %d", seed, round).isTrue();
                    }
                    q.push(c.head(), 0);
                }
                if (q.broken()) {
                    broken++;
                    assertThat(q.violation()).isNotNull();
                }
            }
        }
        System.out.println("garbage: " + popped + " chains popped, " + broken + " queues broken");
        assertThat(broken).isPositive();
        assertThat(popped).isPositive();
    }

    private static long randomAddr(SplittableRandom rnd) {
        return switch (rnd.nextInt(5)) {
            case 0 -> rnd.nextLong();
            case 1 -> QueueGuest.HOLE + rnd.nextInt(0x1000);
            case 2 -> QueueGuest.R1 - rnd.nextInt(1, 9000);
            default -> QueueGuest.R1 + rnd.nextLong(0, QueueGuest.REGION_SIZE);
        };
    }

    private static boolean inside(QueueGuest g, long host, long len) {
        for (var r : g.memory.regions()) {
            MemorySegment h = r.host();
            if (host >= h.address() && host + len <= h.address() + h.byteSize()) {
                return true;
            }
        }
        return false;
    }
}
