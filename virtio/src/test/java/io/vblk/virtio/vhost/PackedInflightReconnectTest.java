package io.vblk.virtio.vhost;

import io.vblk.aio.AioContext;
import io.vblk.aio.sys.FileIo;
import io.vblk.aio.sys.Mmap;
import io.vblk.guest.BlkWireLayout;
import io.vblk.guest.GuestPackedVring;
import io.vblk.guest.GuestRam;
import io.vblk.guest.vhost.VhostUserFrontend;
import io.vblk.virtio.queue.PackedRingLayout;
import io.vblk.virtio.queue.VirtioFeatures;
import io.vblk.virtio.vhost.wire.InflightLayout;
import io.vblk.virtio.vhost.wire.VhostUserCodec.Inflight;
import org.junit.jupiter.api.AutoClose;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.RandomAccessFile;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;

import static io.vblk.virtio.vhost.VhostRig.LE16;
import static io.vblk.virtio.vhost.VhostRig.LE32;
import static io.vblk.virtio.vhost.VhostRig.LE64;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * {@link InflightReconnectTest} on a packed ring, over the real socket: the inflight buffer vblk
 * creates for a driver that negotiated VIRTIO_F_RING_PACKED has the packed layout; a back-end
 * "dies" having popped two writes and completed the second out of order — its used descriptor
 * overwrote the first write's head descriptor in the ring, as a packed ring does — and a new
 * connection hands the buffer back with the base of the last clean stop (what QEMU sends: it
 * cannot read a packed ring's indices). vblk must take the resume point and wrap counters from the
 * record and execute the first write again from the record's copy of its descriptors.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class PackedInflightReconnectTest {
    private static final Duration T = Duration.ofSeconds(20);
    private static final int SIZE = 64;
    private static final int WRAP = PackedRingLayout.WRAP_BIT;

    @TempDir
    Path dir;
    @AutoClose
    private VhostRig rig;
    private final List<Integer> tokens = new ArrayList<>();

    @Test
    void aRestartedBackendResubmitsFromTheRecordWithItsWrapCounters() throws Exception {
        Path img = VhostRig.image(dir, 1 << 20);
        rig = new VhostRig(dir);
        VhostRig.Served served = rig.serve("file:" + img + ",aio=threads,cache=writeback", 1, 1);
        String sock = served.sock();
        BlockingQueue<String> reasons = served.reasons();
        AioContext c = rig.control();

        GuestRam ram = GuestRam.memfd("guest", GuestRam.DEFAULT_GPA_BASE, 4 << 20);
        GuestPackedVring vring = GuestPackedVring.allocate(ram, SIZE);
        VhostRig.Writes writes = new VhostRig.Writes(ram, vring, 8);
        // First back-end life: one write (3 descriptors), completed normally.
        VhostUserFrontend fe1 = connect(sock);
        start(fe1, ram, vring, WRAP | WRAP << 16);
        int w0 = writes.post(0, (byte) 0x10);
        kick(fe1);
        awaitTokens(vring, 1);
        assertThat(tokens).containsExactly(w0);
        int keptFd = rig.onFe(() -> FileIo.dup(fe1.inflightFd()));
        Inflight desc = rig.onFe(fe1::inflight);
        assertThat(desc.mmapSize()).as("packed layout: 32 + 32 * 64 bytes, 64-aligned")
                .isEqualTo(InflightLayout.queueRegionBytes(SIZE, true));
        rig.close(fe1);
        assertThat(reasons.poll(10, TimeUnit.SECONDS)).isEqualTo("front-end disconnected");
        // The base of that clean stop, which QEMU sends again whatever happened after it.
        int lastBase = (3 | WRAP) | (3 | WRAP) << 16;

        // The state a back-end killed mid-flight leaves: w1 (slots 3..5) and w2 (6..8) popped,
        // w2 completed first: its used descriptor at slot 3, over w1's head; w1 recorded in flight.
        int w1 = writes.post(1, (byte) 0x21);
        int w2 = writes.post(2, (byte) 0x22);
        MemorySegment ring = ram.segment(vring.layout().descAddr(), 16L * SIZE);
        long map = Mmap.mmap(0, desc.mmapSize(), Mmap.PROT_READ | Mmap.PROT_WRITE, Mmap.MAP_SHARED, keptFd, desc.mmapOffset());
        MemorySegment region = MemorySegment.ofAddress(map).reinterpret(desc.mmapSize());
        assertThat(region.get(ValueLayout.JAVA_SHORT_UNALIGNED, InflightLayout.VERSION)).as("version").isEqualTo((short) 1);
        assertThat(u16(region, InflightLayout.P_USED_IDX)).as("used_idx after w0").isEqualTo(3);
        for (int k = 0; k < 3; k++) {
            copyDesc(ring, 3 + k, region, k);      // w1 in entries 0..2 (the free list after w0 starts at 0)
            copyDesc(ring, 6 + k, region, 3 + k);  // w2 in entries 3..5
        }
        head(region, 0, 3, 2, 1);
        head(region, 3, 3, 5, 2);
        region.set(ValueLayout.JAVA_BYTE, InflightLayout.desc(0, true) + InflightLayout.PD_INFLIGHT, (byte) 1);
        setU16(region, InflightLayout.P_FREE_HEAD, 3); // w2's entries freed back to the list's head
        setU16(region, InflightLayout.P_OLD_FREE_HEAD, 3);
        setU16(region, InflightLayout.P_USED_IDX, 6);
        setU16(region, InflightLayout.P_OLD_USED_IDX, 6);
        Mmap.munmap(map, desc.mmapSize());
        writeBlock(img, 2, (byte) 0x22);
        ram.segment(writes.status(w2), 1).set(ValueLayout.JAVA_BYTE, 0, (byte) BlkWireLayout.S_OK);
        ring.set(LE16, 16L * 3 + 12, (short) writes.head(w2));
        ring.set(LE32, 16L * 3 + 8, 1);
        ring.set(LE16, 16L * 3 + 14, (short) (PackedRingLayout.F_AVAIL | PackedRingLayout.F_USED));

        // Second back-end life: the buffer handed back, the stale base.
        VhostUserFrontend fe2 = connect(sock);
        rig.onFe(() -> {
            fe2.reuseInflight(keptFd, desc);
            return null;
        });
        start(fe2, ram, vring, lastBase);
        awaitTokens(vring, 3);
        assertThat(tokens).containsExactly(w0, w2, w1);
        assertThat(ram.segment(writes.status(w1), 1).get(ValueLayout.JAVA_BYTE, 0)).isEqualTo((byte) BlkWireLayout.S_OK);
        assertThat(VhostRig.readBlock(img, 1)).isEqualTo((byte) 0x21);
        // The device resumed after w2's descriptors: a next write completes alone.
        int w3 = writes.post(3, (byte) 0x23);
        kick(fe2);
        awaitTokens(vring, 4);
        assertThat(tokens).containsExactly(w0, w2, w1, w3);
        assertThat(VhostRig.readBlock(img, 3)).isEqualTo((byte) 0x23);
        assertThat(AioContext.await(c.callOn(served.device()::needsReset), T)).isFalse();
        rig.close(fe2);
        ram.close();
    }

    private static int u16(MemorySegment r, long off) {
        return Short.toUnsignedInt(r.get(ValueLayout.JAVA_SHORT_UNALIGNED, off));
    }

    private static void setU16(MemorySegment r, long off, int v) {
        r.set(ValueLayout.JAVA_SHORT_UNALIGNED, off, (short) v);
    }

    /** Ring slot {@code slot}'s descriptor into record entry {@code e} (native order, as the back-end writes it). */
    private static void copyDesc(MemorySegment ring, int slot, MemorySegment region, int e) {
        long d = InflightLayout.desc(e, true);
        region.set(ValueLayout.JAVA_LONG_UNALIGNED, d + InflightLayout.PD_ADDR, ring.get(LE64, 16L * slot));
        region.set(ValueLayout.JAVA_INT_UNALIGNED, d + InflightLayout.PD_LEN, ring.get(LE32, 16L * slot + 8));
        setU16(region, d + InflightLayout.PD_ID, Short.toUnsignedInt(ring.get(LE16, 16L * slot + 12)));
        setU16(region, d + InflightLayout.PD_FLAGS, Short.toUnsignedInt(ring.get(LE16, 16L * slot + 14)));
    }

    private static void head(MemorySegment region, int e, int num, int last, long counter) {
        long d = InflightLayout.desc(e, true);
        setU16(region, d + InflightLayout.PD_NUM, num);
        setU16(region, d + InflightLayout.PD_LAST, last);
        region.set(ValueLayout.JAVA_LONG_UNALIGNED, d + InflightLayout.PD_COUNTER, counter);
    }

    private VhostUserFrontend connect(String sock) {
        return rig.connect(sock);
    }

    private void start(VhostUserFrontend f, GuestRam ram, GuestPackedVring vring, int base) {
        rig.start(f, ram, vring.layout(), 1L << VirtioFeatures.VERSION_1 | 1L << VirtioFeatures.RING_PACKED, base);
    }

    private void kick(VhostUserFrontend f) {
        rig.kick(f);
    }

    /** Reaps, bounded, until {@code n} requests have completed in all. */
    private void awaitTokens(GuestPackedVring vring, int n) {
        long end = System.nanoTime() + T.toNanos();
        while (tokens.size() < n) {
            assertThat(System.nanoTime()).as("%d completions, waiting for %d", tokens.size(), n).isLessThan(end);
            if (vring.reap((token, len) -> tokens.add(token)) == 0) {
                Thread.onSpinWait();
            }
        }
    }

    private static void writeBlock(Path img, int block, byte fill) throws Exception {
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.seek(block * 4096L);
            byte[] b = new byte[4096];
            java.util.Arrays.fill(b, fill);
            f.write(b);
        }
    }
}
