package io.vblk.virtio.vhost;

import io.vblk.aio.AioContext;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.node.BlockNode;
import io.vblk.guest.BlkSlot;
import io.vblk.guest.GuestBlkDriver;
import io.vblk.guest.GuestBlkQueue;
import io.vblk.guest.vhost.VhostUserTransport;
import io.vblk.virtio.blk.BlkDevice;
import org.junit.jupiter.api.AutoClose;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * Online resize end to end in one process: {@link BlockNode#resize} on the main loop changes the
 * file under a device served over vhost-user; the front-end hears
 * VHOST_USER_BACKEND_CONFIG_CHANGE_MSG on the backend channel, re-reads the config space and sees the
 * new capacity; the guest then writes and reads back the new area, which was out of range before.
 */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class OnlineResizeTest {
    private static final Duration T = Duration.ofSeconds(20);
    private static final int S_OK = 0;
    private static final int S_IOERR = 1;

    @TempDir
    Path dir;
    @AutoClose
    private VhostRig rig;
    private BlockDriver driver;
    private BlockNode node;
    private BlkDevice device;
    private String sock;

    private void serve(String driverSpec) {
        rig = new VhostRig(dir);
        VhostRig.Served served = rig.serve("vblk.sock", driverSpec, "disk0", 1, 1);
        driver = served.driver();
        node = served.node();
        device = served.device();
        sock = served.sock();
    }

    private long resize(long bytes) {
        CompletableFuture<Long> f = AioContext.await(rig.control().callOn(() -> node.resize(bytes)), T);
        return AioContext.await(f, T);
    }

    /** Posts one request on queue 0, waits (bounded) for it, returns its status. */
    private static int roundTrip(GuestBlkQueue q, BlkSlot s, boolean write, long sector, int bytes) {
        if (write) {
            q.postWrite(s, sector, bytes, 1);
        } else {
            q.postRead(s, sector, bytes, 1);
        }
        q.kick();
        assertThat(q.awaitCompletions(1, 10_000)).as("completion of the request at sector %d", sector).isEqualTo(1);
        return s.status();
    }

    @Test
    void aGrownFileIsSeenByTheFrontEndAndItsNewAreaServesVerifiedIo() throws Exception {
        Path img = VhostRig.image(dir, 8L << 20);
        serve("file:" + img + ",aio=threads,cache=writeback");
        try (VhostUserTransport t = VhostUserTransport.connect(sock, T);
             GuestBlkDriver g = GuestBlkDriver.attach(t, GuestBlkDriver.Options.defaults().withSlots(4))) {
            AioContext fe = t.control();
            assertThat(AioContext.await(fe.callOn(() -> t.frontend().capacitySectors()), T)).isEqualTo(16384);
            GuestBlkQueue q = g.queue(0);
            q.onCompletion((slot, status, len) -> { });
            BlkSlot s = q.acquire();
            long newSector = 12L << 11; // 12 MiB: beyond the first size, inside the second
            assertThat(roundTrip(q, s, true, newSector, 4096)).as("write beyond the capacity").isEqualTo(S_IOERR);

            CompletableFuture<Long> heard = new CompletableFuture<>();
            AtomicInteger changes = new AtomicInteger();
            AioContext.await(fe.callOn(() -> {
                t.frontend().onConfigChange(() -> {
                    changes.incrementAndGet();
                    heard.complete(t.frontend().capacitySectors());
                });
                return null;
            }), T);
            assertThat(resize(16L << 20)).isEqualTo(16L << 20);
            assertThat(Files.size(img)).isEqualTo(16L << 20);
            assertThat(AioContext.await(heard, T)).as("capacity after the config-change message").isEqualTo(32768);
            assertThat(AioContext.await(rig.control().callOn(device::capacitySectors), T)).isEqualTo(32768);

            for (int i = 0; i < 4096; i++) {
                s.data().set(java.lang.foreign.ValueLayout.JAVA_BYTE, i, (byte) (i * 7 + 3));
            }
            assertThat(roundTrip(q, s, true, newSector, 4096)).as("write in the new area").isEqualTo(S_OK);
            s.data().fill((byte) 0);
            assertThat(roundTrip(q, s, false, newSector, 4096)).as("read of the new area").isEqualTo(S_OK);
            for (int i = 0; i < 4096; i++) {
                assertThat(s.data().get(java.lang.foreign.ValueLayout.JAVA_BYTE, i)).as("byte %d", i).isEqualTo((byte) (i * 7 + 3));
            }
            byte[] onDisk = new byte[4096];
            try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "r")) {
                f.seek(newSector * 512);
                f.readFully(onDisk);
            }
            assertThat(onDisk[4095]).isEqualTo((byte) (4095 * 7 + 3));

            // Shrinking: the capacity follows, and the area beyond it is refused again.
            CompletableFuture<Long> shrunk = new CompletableFuture<>();
            AioContext.await(fe.callOn(() -> {
                t.frontend().onConfigChange(() -> shrunk.complete(t.frontend().capacitySectors()));
                return null;
            }), T);
            assertThat(resize(10L << 20)).isEqualTo(10L << 20);
            assertThat(AioContext.await(shrunk, T)).isEqualTo(20480);
            assertThat(roundTrip(q, s, false, newSector, 4096)).as("read beyond the shrunk capacity").isEqualTo(S_IOERR);
            assertThat(changes.get()).isEqualTo(2);
            q.release(s);
        }
    }

    @Test
    void aNullNodeResizesAndBadSizesAreRefusedWithQemusMessages() throws Exception {
        serve("null:size=64M");
        assertThat(resize(128L << 20)).isEqualTo(128L << 20);
        assertThat(driver.length()).isEqualTo(128L << 20);
        assertThat(AioContext.await(rig.control().callOn(device::capacitySectors), T)).isEqualTo(262144);
        assertThatThrownBy(() -> resize(-1)).isInstanceOf(CompletionException.class)
                .hasRootCauseMessage("Parameter 'size' expects a >0 size");
        // The node is not left drained by a refused resize: the section ended.
        assertThat(AioContext.await(rig.control().callOn(node::isDrained), T)).isFalse();
    }

    @Test
    void aReadOnlyNodeRefusesToResize() throws Exception {
        Path img = dir.resolve("ro.img");
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(1L << 20);
        }
        serve("file:" + img + ",aio=threads,cache=writeback,ro=on");
        assertThatThrownBy(() -> resize(2L << 20)).hasRootCauseMessage("Block node is read-only");
        assertThat(Files.size(img)).isEqualTo(1L << 20);
    }
}
