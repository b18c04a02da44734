package io.vblk.virtio.vhost;

import io.vblk.aio.AioContext;
import io.vblk.aio.sys.FileIo;
import io.vblk.aio.sys.Mmap;
import io.vblk.guest.BlkWireLayout;
import io.vblk.guest.GuestRam;
import io.vblk.guest.GuestVring;
import io.vblk.guest.vhost.VhostUserFrontend;
import org.junit.jupiter.api.AutoClose;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.RandomAccessFile;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.Callable;

import static io.vblk.virtio.vhost.VhostRig.LE32;
import static io.vblk.virtio.vhost.VhostRig.LE64;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * The hand-over of a live migration between two back-ends on the same image, as QEMU drives it:
 * the source logs while requests run (slowed down by a delay rule, so some are in flight when the
 * front-end stops the ring), GET_VRING_BASE on the source answers once those finished with the
 * exact next avail index — every request it took is in the used ring, none is left in flight — and
 * the destination, started with SET_VRING_BASE = that index on the same (migrated) guest memory
 * and a fresh inflight buffer, takes exactly the requests the source never popped. Each request
 * completes once, and every write is on the image. Every other round stops the source as QEMU 7.2
 * does at the end of a migration: SET_STATUS 0 (which resets the device) before GET_VRING_BASE,
 * whose answer must still be the resume point.
 */
@Timeout(value = 90, unit = TimeUnit.SECONDS)
class MigrationHandOverTest {
    private static final Duration T = Duration.ofSeconds(20);
    private static final int BLOCKS = 128;

    @TempDir
    Path dir;
    @AutoClose
    private VhostRig rig;

    @Test
    void theDestinationResumesExactlyWhereTheSourceStoppedRepeatedly() throws Exception {
        Path img = VhostRig.image(dir, 4 << 20);
        rig = new VhostRig(dir);
        GuestRam ram = GuestRam.memfd("guest", GuestRam.DEFAULT_GPA_BASE, 8 << 20);
        GuestVring vring = GuestVring.allocate(ram, 256);
        int logFd = Mmap.memfdCreate("dirty-log", Mmap.MFD_CLOEXEC);
        assertThat(FileIo.ftruncate(logFd, 4096)).isZero();
        long[] data = new long[BLOCKS];
        long[] hdr = new long[BLOCKS];
        long[] status = new long[BLOCKS];
        for (int i = 0; i < BLOCKS; i++) {
            hdr[i] = ram.allocate(16, 16);
            data[i] = ram.allocate(4096, 4096);
            status[i] = ram.allocate(1, 1);
        }
        int[] completions = new int[BLOCKS];
        int posted = 0;
        int base = 0;
        int handOvers = 0;
        int takenBySource = 0;
        // Five migrations: A -> B -> A' -> ..., each back-end its own export on the same image.
        for (int round = 0; round < 5; round++) {
            // Writes on the source are slow (the delay rule), so some are in flight at the stop.
            String sock = export("vblk" + round + ".sock",
                    "fault:rule=op:write,delay:15ms;inner=file:" + img + ",aio=threads,cache=writeback");
            VhostUserFrontend src = connect(sock);
            start(src, ram, vring, base);
            for (int k = 0; k < 12 && posted < BLOCKS; k++) {
                postWrite(ram, vring, hdr, data, status, posted++);
            }
            vring.publish();
            kick(src);
            onFe(() -> src.migration().startDirtyLog(logFd, 4096)); // logging switched on with requests in flight
            for (int k = 0; k < 4 && posted < BLOCKS; k++) {
                postWrite(ram, vring, hdr, data, status, posted++);
            }
            vring.publish();
            kick(src);
            // Published, never kicked: the source may or may not poll them before the stop.
            for (int k = 0; k < 3 && posted < BLOCKS; k++) {
                postWrite(ram, vring, hdr, data, status, posted++);
            }
            vring.publish();
            CompletableFuture<Integer> stopped = new CompletableFuture<>();
            boolean qemu72 = round % 2 == 1;
            AioContext.await(rig.frontEnd().ctx().callOn(() -> {
                if (qemu72) {
                    // QEMU 7.2's vhost_dev_stop: SET_STATUS 0 (a device reset) before GET_VRING_BASE.
                    src.migration().stopDevice(bases -> stopped.complete(bases[0]));
                } else {
                    src.stopQueue(0, stopped::complete);
                }
                return null;
            }), T);
            int next = AioContext.await(stopped, T);
            // The hand-over point: everything the source took is completed and in the used ring.
            assertThat(vring.usedIdx()).as("round %d: used idx at GET_VRING_BASE", round).isEqualTo(next);
            takenBySource += (next - base) & 0xffff;
            reap(vring, completions);
            onFe(() -> {
                src.close();
                return CompletableFuture.completedFuture(null);
            });
            base = next;
            handOvers++;
            // Requests added after the stop, while the guest "runs on the destination".
            for (int k = 0; k < 2 && posted < BLOCKS; k++) {
                postWrite(ram, vring, hdr, data, status, posted++);
            }
            vring.publish();
        }
        // The last destination takes whatever is left and the read-back.
        String sock = export("vblk-final.sock", "file:" + img + ",aio=threads,cache=writeback");
        VhostUserFrontend dst = connect(sock);
        start(dst, ram, vring, base);
        kick(dst);
        awaitUsed(vring, posted);
        reap(vring, completions);
        for (int i = 0; i < posted; i++) {
            assertThat(completions[i]).as("request %d completions", i).isEqualTo(1);
            assertThat(ram.segment(status[i], 1).get(ValueLayout.JAVA_BYTE, 0)).isEqualTo((byte) BlkWireLayout.S_OK);
        }
        assertThat(handOvers).isEqualTo(5);
        assertThat(takenBySource).as("requests the sources took").isPositive();
        assertThat(takenBySource).as("requests the sources took: all but the final destination's").isEqualTo(base);
        assertThat(posted - base).as("requests the final destination took").isPositive();
        onFe(() -> {
            dst.close();
            return CompletableFuture.completedFuture(null);
        });
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "r")) {
            for (int i = 0; i < posted; i++) {
                f.seek(i * 4096L + 17);
                assertThat(f.readByte()).as("block %d on the image", i).isEqualTo(fill(i));
            }
        }
        ram.close();
        FileIo.close(logFd);
    }

    private static byte fill(int i) {
        return (byte) (0x40 + i);
    }

    /** A back-end of its own (driver, I/O thread, device, export) on {@code spec}; returns its socket. */
    private String export(String sockName, String spec) {
        return rig.serve(sockName, spec, "vda", 1, 1).sock();
    }

    private static void postWrite(GuestRam ram, GuestVring vring, long[] hdr, long[] data, long[] status, int i) {
        MemorySegment h = ram.segment(hdr[i], 16);
        h.set(LE32, BlkWireLayout.HDR_TYPE, BlkWireLayout.T_OUT);
        h.set(LE32, BlkWireLayout.HDR_RESERVED, 0);
        h.set(LE64, BlkWireLayout.HDR_SECTOR, i * 8L);
        ram.segment(data[i], 4096).fill(fill(i));
        ram.segment(status[i], 1).set(ValueLayout.JAVA_BYTE, 0, (byte) 0x7f);
        vring.beginChain();
        vring.addBuffer(hdr[i], 16, false);
        vring.addBuffer(data[i], 4096, false);
        vring.addBuffer(status[i], 1, true);
        vring.commitChain(i);
    }

    private static void reap(GuestVring vring, int[] completions) {
        vring.reap((token, len) -> completions[token]++);
    }

    private VhostUserFrontend connect(String sock) {
        return rig.connect(sock);
    }

    private void start(VhostUserFrontend f, GuestRam ram, GuestVring vring, int base) {
        rig.start(f, ram, vring.layout(), 1L << 32, base);
    }

    private void onFe(Callable<CompletableFuture<Void>> op) {
        rig.awaitOnFe(op);
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
}
