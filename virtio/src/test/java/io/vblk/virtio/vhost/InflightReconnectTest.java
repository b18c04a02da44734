package io.vblk.virtio.vhost;

import io.vblk.aio.AioContext;
import io.vblk.aio.sys.EventFds;
import io.vblk.aio.sys.FileIo;
import io.vblk.aio.sys.Mmap;
import io.vblk.guest.BlkWireLayout;
import io.vblk.guest.GuestRam;
import io.vblk.guest.GuestVring;
import io.vblk.guest.vhost.VhostUserFrontend;
import io.vblk.virtio.blk.BlkDevice;
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
 * Reconnection over the real socket with INFLIGHT_SHMFD: a front-end keeps the inflight buffer
 * vblk gave it, the back-end "dies" having completed the second of two writes out of order and
 * left the first in flight (the rings and the record are put in exactly the state a back-end
 * killed at that moment leaves), and a new front-end connection hands the buffer back with
 * SET_INFLIGHT_FD and the used index as base (what QEMU sends after a lost connection). vblk must
 * execute the first write again and not the second: the rewind to the used index alone would
 * pop the completed second write a second time and never run the first.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class InflightReconnectTest {
    private static final Duration T = Duration.ofSeconds(20);

    @TempDir
    Path dir;
    @AutoClose
    private VhostRig rig;
    private BlkDevice device;
    private BlockingQueue<String> reasons;
    private final List<Integer> tokens = new ArrayList<>();

    /** Serves {@code spec} as "vda" (one queue, one I/O thread); returns the socket. */
    private String serve(String spec) {
        rig = new VhostRig(dir);
        VhostRig.Served served = rig.serve(spec, 1, 1);
        device = served.device();
        reasons = served.reasons();
        return served.sock();
    }

    @Test
    void aRestartedBackendExecutesTheRecordedRequestAndNotTheCompletedOne() throws Exception {
        Path img = VhostRig.image(dir, 1 << 20);
        String sock = serve("file:" + img + ",aio=threads,cache=writeback");

        GuestRam ram = GuestRam.memfd("guest", GuestRam.DEFAULT_GPA_BASE, 4 << 20);
        GuestVring vring = GuestVring.allocate(ram, 64);
        VhostRig.Writes writes = new VhostRig.Writes(ram, vring, 8);
        // First back-end life: one write, completed normally; the front-end keeps the buffer.
        VhostUserFrontend fe1 = connect(sock);
        start(fe1, ram, vring, 0);
        int w0 = writes.post(0, (byte) 0x10);
        kick(fe1);
        awaitUsed(vring, 1);
        reap(vring);
        assertThat(tokens).containsExactly(w0);
        int keptFd = rig.onFe(() -> FileIo.dup(fe1.inflightFd()));
        Inflight desc = rig.onFe(fe1::inflight);
        rig.close(fe1);
        assertThat(reasons.poll(10, TimeUnit.SECONDS)).isEqualTo("front-end disconnected");

        // The state a back-end killed mid-flight leaves: w1 and w2 popped, w2 completed (its
        // data on disk, its used element published), w1 still recorded in flight.
        int u = vring.usedIdx();
        int w1 = writes.post(1, (byte) 0x21);
        int w2 = writes.post(2, (byte) 0x22);
        vring.publish();
        writeBlock(img, 2, (byte) 0x22);
        MemorySegment used = ram.segment(vring.usedGpa(), 6 + 8L * 64);
        used.set(LE32, 4 + 8L * (u & 63), writes.head(w2));
        used.set(LE32, 8 + 8L * (u & 63), 1);
        ram.segment(writes.status(w2), 1).set(ValueLayout.JAVA_BYTE, 0, (byte) BlkWireLayout.S_OK);
        used.set(LE16, 2, (short) (u + 1));
        long map = Mmap.mmap(0, desc.mmapSize(), Mmap.PROT_READ | Mmap.PROT_WRITE, Mmap.MAP_SHARED, keptFd, desc.mmapOffset());
        MemorySegment region = MemorySegment.ofAddress(map).reinterpret(desc.mmapSize());
        assertThat(region.get(ValueLayout.JAVA_SHORT_UNALIGNED, InflightLayout.VERSION)).as("version").isEqualTo((short) 1);
        long d1 = InflightLayout.DESC + (long) InflightLayout.DESC_BYTES * writes.head(w1);
        region.set(ValueLayout.JAVA_LONG_UNALIGNED, d1 + InflightLayout.DESC_COUNTER, 41L);
        region.set(ValueLayout.JAVA_BYTE, d1 + InflightLayout.DESC_INFLIGHT, (byte) 1);
        region.set(ValueLayout.JAVA_SHORT_UNALIGNED, InflightLayout.LAST_BATCH_HEAD, (short) writes.head(w2));
        region.set(ValueLayout.JAVA_SHORT_UNALIGNED, InflightLayout.USED_IDX, (short) (u + 1));
        Mmap.munmap(map, desc.mmapSize());

        // Second back-end life: the buffer handed back, base = the ring's used index.
        VhostUserFrontend fe2 = connect(sock);
        rig.onFe(() -> {
            fe2.reuseInflight(keptFd, desc);
            return null;
        });
        start(fe2, ram, vring, u + 1);
        awaitUsed(vring, u + 2);
        reap(vring);
        assertThat(tokens).containsExactly(w0, w2, w1);
        assertThat(ram.segment(writes.status(w1), 1).get(ValueLayout.JAVA_BYTE, 0)).isEqualTo((byte) BlkWireLayout.S_OK);
        assertThat(VhostRig.readBlock(img, 1)).isEqualTo((byte) 0x21);
        // Nothing else comes back: a next write completes alone.
        int w3 = writes.post(3, (byte) 0x23);
        vring.publish();
        kick(fe2);
        awaitUsed(vring, u + 3);
        reap(vring);
        assertThat(tokens).containsExactly(w0, w2, w1, w3);
        rig.close(fe2);
        ram.close();
    }

    @Test
    void kickAndCallFdsSwitchedUnderLoadLoseNoRequestAndNeverStopTheQueue() throws Exception {
        String sock = serve("null:size=64M");
        AioContext c = rig.control();
        GuestRam ram = GuestRam.memfd("guest", GuestRam.DEFAULT_GPA_BASE, 4 << 20);
        GuestVring vring = GuestVring.allocate(ram, 128);
        VhostUserFrontend f = connect(sock);
        start(f, ram, vring, 0);
        int total = 3000;
        int posted = 0;
        int[] done = {0};
        int switches = 0;
        int notifiedAfterSwitch = 0;
        long[] hdrs = new long[32];
        long block = ram.allocate(4096 + 16 * 32 + 32, 4096);
        for (int i = 0; i < 32; i++) {
            hdrs[i] = block + 4096 + 16L * i;
        }
        java.util.ArrayDeque<Integer> freeSlots = new java.util.ArrayDeque<>();
        for (int i = 0; i < 32; i++) {
            freeSlots.add(i);
        }
        long end = System.nanoTime() + T.toNanos() * 2;
        while (done[0] < total) {
            assertThat(System.nanoTime()).as("%d of %d completed, %d switches", done[0], total, switches).isLessThan(end);
            boolean any = false;
            while (posted < total && !freeSlots.isEmpty()) {
                int slot = freeSlots.poll();
                MemorySegment h = ram.segment(hdrs[slot], 16);
                h.set(LE32, BlkWireLayout.HDR_TYPE, BlkWireLayout.T_OUT);
                h.set(LE64, BlkWireLayout.HDR_SECTOR, (posted % 1000) * 8L);
                vring.beginChain();
                vring.addBuffer(hdrs[slot], 16, false);
                vring.addBuffer(block, 4096, false);
                vring.addBuffer(block + 4096 + 16 * 32 + slot, 1, true);
                vring.commitChain(slot);
                posted++;
                any = true;
            }
            if (any) {
                vring.publish();
                kick(f);
            }
            int before = done[0];
            vring.reap((token, len) -> {
                freeSlots.add(token);
                done[0]++;
            });
            if (done[0] / 100 != before / 100) {
                // New kick and call eventfds while 32 requests are in flight.
                int k = EventFds.eventfd(0, EventFds.EFD_NONBLOCK | EventFds.EFD_CLOEXEC);
                int cl = EventFds.eventfd(0, EventFds.EFD_NONBLOCK | EventFds.EFD_CLOEXEC);
                AioContext.await(rig.frontEnd().ctx().callOn(() -> {
                    f.setQueueFds(0, k, cl);
                    return f.settled();
                }).thenCompose(x -> x), T);
                switches++;
            }
            int cfd = rig.onFe(() -> f.callFd(0));
            if (switches > 0 && EventFds.eventfdRead(cfd) > 0) {
                notifiedAfterSwitch++;
            }
        }
        assertThat(switches).isGreaterThanOrEqualTo(25);
        assertThat(notifiedAfterSwitch).isPositive();
        assertThat(AioContext.await(c.callOn(() -> device.queueStarted(0)), T)).isTrue();
        assertThat(AioContext.await(c.callOn(device::needsReset), T)).isFalse();
        rig.close(f);
        ram.close();
    }


    private VhostUserFrontend connect(String sock) {
        return rig.connect(sock);
    }

    private void start(VhostUserFrontend f, GuestRam ram, GuestVring vring, int base) {
        rig.start(f, ram, vring.layout(), 1L << 32, base);
    }

    private void kick(VhostUserFrontend f) {
        rig.kick(f);
    }

    private static void awaitUsed(GuestVring vring, int idx) {
        long end = System.nanoTime() + T.toNanos();
        while (vring.usedIdx() != (idx & 0xffff)) {
            assertThat(System.nanoTime()).as("used idx %d, waiting for %d", vring.usedIdx(), idx).isLessThan(end);
            Thread.onSpinWait();
        }
    }

    private void reap(GuestVring vring) {
        vring.reap((token, len) -> tokens.add(token));
    }

    private static void writeBlock(Path img, int block, byte fill) throws Exception {
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.seek(block * 4096L);
            f.write(new byte[4096]);
            f.seek(block * 4096L);
            byte[] b = new byte[4096];
            java.util.Arrays.fill(b, fill);
            f.write(b);
        }
    }
}
