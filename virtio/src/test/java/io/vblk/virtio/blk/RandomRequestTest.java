package io.vblk.virtio.blk;

import io.vblk.guest.BlkSlot;
import io.vblk.guest.BlkWireLayout;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Seeded random virtio-blk requests of every type, valid and not, in random framings (header
 * split, data in up to four descriptors, status sharing a descriptor with data, indirect or
 * direct), checked against a model of the disk and of the spec's status rules. Rerun one with
 * {@code -Dvblk.seed=N}.
 */
@Timeout(60)
class RandomRequestTest {
    static final int SECTORS = 2048; // 1 MiB disk
    static final int MAX_DISCARD = 64;

    record Expect(BlkSlot req, int status, long sector, int sectors, int type) {
    }

    @Test
    void randomRequestsMatchTheModel() {
        for (MemDriver.Mode mode : new MemDriver.Mode[] {MemDriver.Mode.SYNC, MemDriver.Mode.ASYNC,
                                                         MemDriver.Mode.ASYNC_REVERSED}) {
            long seed = Long.getLong("vblk.seed", System.nanoTime());
            System.out.println("randomRequestsMatchTheModel(" + mode + "): seed " + seed
                    + " (rerun with -Dvblk.seed=" + seed + ")");
            run(new SplittableRandom(seed), mode, seed);
        }
    }

    private void run(SplittableRandom rnd, MemDriver.Mode mode, long seed) {
        MemDriver drv = new MemDriver((long) SECTORS * 512);
        drv.mode = mode;
        byte[] model = new byte[SECTORS * 512];
        boolean[] known = new boolean[SECTORS];
        java.util.Arrays.fill(known, true);
        try (BlkFixture f = new BlkFixture(drv, c -> c.maxDiscardSectors(MAX_DISCARD).maxWriteZeroesSectors(MAX_DISCARD),
                -1)) {
            GuestQueue g = f.guest;
            for (int round = 0; round < 150; round++) {
                g.setIndirect(rnd.nextInt(3) == 0);
                int n = rnd.nextInt(1, g.indirect() ? 20 : 8);
                boolean[] busy = new boolean[SECTORS];
                List<Expect> expects = new ArrayList<>();
                Map<Integer, byte[]> writes = new HashMap<>();
                for (int i = 0; i < n; i++) {
                    expects.add(post(rnd, g, busy, writes, expects.size()));
                }
                List<GuestQueue.Done> done = f.kickAndReap();
                assertThat(done).as("seed %d round %d", seed, round).hasSize(n);
                Map<BlkSlot, GuestQueue.Done> bySlot = new HashMap<>();
                for (GuestQueue.Done d : done) {
                    bySlot.put(d.slot(), d);
                }
                for (int i = 0; i < expects.size(); i++) {
                    Expect e = expects.get(i);
                    GuestQueue.Done d = bySlot.get(e.req);
                    assertThat(d.status()).as("seed %d round %d req %d type %d sector %d sectors %d", seed, round, i,
                            e.type, e.sector, e.sectors).isEqualTo(e.status);
                    if (e.type == BlkRequestType.IN && e.status == BlkStatus.OK) {
                        byte[] got = GuestQueue.data(e.req);
                        for (int s = 0; s < e.sectors; s++) {
                            if (!known[(int) e.sector + s]) {
                                continue;
                            }
                            for (int b = 0; b < 512; b++) {
                                if (got[s * 512 + b] != model[(int) (e.sector + s) * 512 + b]) {
                                    throw new AssertionError("seed " + seed + " round " + round + ": read of sector "
                                            + (e.sector + s) + " byte " + b + " differs");
                                }
                            }
                        }
                        assertThat(d.len()).isEqualTo(e.sectors * 512 + 1);
                    }
                }
                // Apply this round's effects to the model (ranges in a round never overlap).
                for (int i = 0; i < expects.size(); i++) {
                    Expect e = expects.get(i);
                    if (e.status != BlkStatus.OK) {
                        continue;
                    }
                    switch (e.type) {
                        case BlkRequestType.OUT -> {
                            System.arraycopy(writes.get(i), 0, model, (int) e.sector * 512, e.sectors * 512);
                            java.util.Arrays.fill(known, (int) e.sector, (int) e.sector + e.sectors, true);
                        }
                        case BlkRequestType.WRITE_ZEROES -> {
                            java.util.Arrays.fill(model, (int) e.sector * 512, (int) (e.sector + e.sectors) * 512,
                                    (byte) 0);
                            java.util.Arrays.fill(known, (int) e.sector, (int) e.sector + e.sectors, true);
                        }
                        // 5.2.6.1: nothing may be assumed about discarded sectors.
                        case BlkRequestType.DISCARD -> java.util.Arrays.fill(known, (int) e.sector,
                                (int) e.sector + e.sectors, false);
                        default -> {
                        }
                    }
                }
                g.recycle();
            }
            assertThat(f.dev.needsReset()).isFalse();
            assertThat(f.stats().inFlight()).isZero();
        }
    }

    /** Picks a free (or deliberately bad) range in this round. */
    private static long[] range(SplittableRandom rnd, boolean[] busy, int maxSectors) {
        if (rnd.nextInt(8) == 0) {
            // Out of range: starts past the end or runs over it.
            long start = rnd.nextBoolean() ? SECTORS + rnd.nextInt(0, 1000) : SECTORS - rnd.nextInt(1, 4);
            return new long[] {start, rnd.nextInt(4, 9), 0};
        }
        for (int attempt = 0; attempt < 50; attempt++) {
            int len = rnd.nextInt(1, maxSectors + 1);
            int start = rnd.nextInt(0, SECTORS - len + 1);
            boolean free = true;
            for (int s = start; s < start + len; s++) {
                free &= !busy[s];
            }
            if (free) {
                for (int s = start; s < start + len; s++) {
                    busy[s] = true;
                }
                return new long[] {start, len, 1};
            }
        }
        return new long[] {SECTORS + 5, 1, 0};
    }

    private Expect post(SplittableRandom rnd, GuestQueue g, boolean[] busy, Map<Integer, byte[]> writes, int index) {
        int kind = rnd.nextInt(10);
        switch (kind) {
            case 0, 1, 2 -> {
                long[] r = range(rnd, busy, 16);
                boolean ok = r[2] == 1;
                int len = (int) r[1] * 512;
                boolean odd = rnd.nextInt(12) == 0;
                if (odd) {
                    len += rnd.nextInt(1, 512); // 5.2.6.1: not a multiple of 512
                }
                BlkSlot q = chain(rnd, g, BlkRequestType.IN, r[0], null, len, true);
                return new Expect(q, ok && !odd ? BlkStatus.OK : BlkStatus.IOERR, r[0], (int) r[1], BlkRequestType.IN);
            }
            case 3, 4, 5 -> {
                long[] r = range(rnd, busy, 16);
                byte[] data = new byte[(int) r[1] * 512];
                rnd.nextBytes(data);
                writes.put(index, data);
                BlkSlot q = chain(rnd, g, BlkRequestType.OUT, r[0], data, data.length, false);
                return new Expect(q, r[2] == 1 ? BlkStatus.OK : BlkStatus.IOERR, r[0], (int) r[1], BlkRequestType.OUT);
            }
            case 6 -> {
                long[] r = range(rnd, busy, MAX_DISCARD);
                int flags = rnd.nextInt(6) == 0 ? DiscardWriteZeroesLayout.FLAG_UNMAP : rnd.nextInt(8) == 0 ? 4 : 0;
                BlkSlot q = chain(rnd, g, BlkRequestType.DISCARD, 0, segment(r[0], r[1], flags), 16, false);
                int st = flags != 0 ? BlkStatus.UNSUPP : r[2] == 1 ? BlkStatus.OK : BlkStatus.IOERR;
                return new Expect(q, st, r[0], (int) r[1], BlkRequestType.DISCARD);
            }
            case 7 -> {
                long[] r = range(rnd, busy, MAX_DISCARD);
                int flags = rnd.nextBoolean() ? DiscardWriteZeroesLayout.FLAG_UNMAP : rnd.nextInt(8) == 0 ? 6 : 0;
                BlkSlot q = chain(rnd, g, BlkRequestType.WRITE_ZEROES, 0, segment(r[0], r[1], flags), 16,
                        false);
                int st = (flags & ~1) != 0 ? BlkStatus.UNSUPP : r[2] == 1 ? BlkStatus.OK : BlkStatus.IOERR;
                return new Expect(q, st, r[0], (int) r[1], BlkRequestType.WRITE_ZEROES);
            }
            case 8 -> {
                BlkSlot q = rnd.nextBoolean() ? chain(rnd, g, BlkRequestType.FLUSH, 0, null, 0, false)
                        : chain(rnd, g, BlkRequestType.GET_ID, 0, null, 20, true);
                return new Expect(q, BlkStatus.OK, 0, 0, q.type());
            }
            default -> {
                int type = new int[] {2, 3, 5, 6, 12, BlkRequestType.SECURE_ERASE, 77}[ // GET_LIFETIME: LifetimeTest
                        rnd.nextInt(7)];
                BlkSlot q = chain(rnd, g, type, 0, null, 0, false);
                return new Expect(q, BlkStatus.UNSUPP, 0, 0, type);
            }
        }
    }

    static byte[] segment(long sector, long sectors, int flags) {
        byte[] b = new byte[BlkWireLayout.DWZ_BYTES];
        BlkWireLayout.writeSegment(MemorySegment.ofArray(b), 0, sector, (int) sectors, flags);
        return b;
    }

    /** Lays a request out in a random but valid framing (2.7.4.1: the device assumes none). */
    private static BlkSlot chain(SplittableRandom rnd, GuestQueue g, int type, long sector, byte[] data, int dataLen,
                                 boolean dataWritable) {
        BlkSlot s = g.beginFramed(type, rnd.nextInt(), sector);
        long hdr = s.hdrGpa();
        boolean statusWithData = dataWritable && dataLen > 0 && rnd.nextBoolean();
        long buf = s.dataGpa();
        if (!dataWritable && dataLen > 0 && rnd.nextInt(4) == 0) {
            // Header and data in one readable descriptor: a second copy of the header at the
            // start of the data buffer, the data right after it.
            BlkWireLayout.writeHeader(s.data(), 0, type, rnd.nextInt(), sector);
            if (data != null) {
                MemorySegment.copy(MemorySegment.ofArray(data), 0, s.data(), BlkWireLayout.HDR_BYTES, dataLen);
            }
            g.addBuffer(buf, BlkWireLayout.HDR_BYTES + dataLen, false);
            g.addBuffer(s.statusGpa(), 1, true);
            return g.commitFramed(s, s.statusGpa(), dataLen);
        }
        if (data != null) {
            MemorySegment.copy(MemorySegment.ofArray(data), 0, s.data(), 0, dataLen);
        }
        if (rnd.nextBoolean()) {
            int cut = rnd.nextInt(1, 16);
            g.addBuffer(hdr, cut, false);
            g.addBuffer(hdr + cut, 16 - cut, false);
        } else {
            g.addBuffer(hdr, 16, false);
        }
        int pieces = dataLen == 0 ? 0 : rnd.nextInt(1, Math.min(4, dataLen) + 1);
        long at = 0;
        for (int p = 0; p < pieces; p++) {
            long left = dataLen - at;
            long len = p == pieces - 1 ? left : rnd.nextLong(1, left - (pieces - p - 1) + 1);
            boolean last = p == pieces - 1;
            long l = last && statusWithData ? len + 1 : len;
            g.addBuffer(buf + at, l, dataWritable);
            at += len;
        }
        if (statusWithData) {
            return g.commitFramed(s, buf + dataLen, dataLen);
        }
        g.addBuffer(s.statusGpa(), 1, true);
        return g.commitFramed(s, s.statusGpa(), dataLen);
    }
}
