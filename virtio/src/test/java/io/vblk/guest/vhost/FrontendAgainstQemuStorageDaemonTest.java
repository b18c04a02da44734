package io.vblk.guest.vhost;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.IoThread;
import io.vblk.guest.BlkSlot;
import io.vblk.guest.BlkWireLayout;
import io.vblk.guest.GuestBlkDriver;
import io.vblk.guest.GuestBlkQueue;
import io.vblk.guest.Workload;
import io.vblk.guest.WorkloadResult;
import io.vblk.guest.WorkloadRun;
import io.vblk.virtio.vhost.QemuStorageDaemon;
import io.vblk.virtio.vhost.wire.VhostUserProtocolFeature;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.RandomAccessFile;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The front-end against the reference back-end, qemu-storage-daemon: this checks vblk's reading
 * of the vhost-user protocol independently of vblk's own server. Negotiation, config space,
 * SET_MEM_TABLE with the mock guest's memfd RAM, ring set-up on two queues, real I/O through the
 * rings (the guest package's queues) into an image file, and GET_VRING_BASE.
 */
@org.junit.jupiter.api.Tag("real")
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class FrontendAgainstQemuStorageDaemonTest {
    private static final Duration T = Duration.ofSeconds(20);
    private static final long VERSION_1 = 1L << 32;

    @TempDir
    Path dir;
    private IoThread io;
    private QemuStorageDaemon qsd;

    @BeforeAll
    static void daemon() throws Exception {
        QemuStorageDaemon.ensureInstalled();
    }

    @AfterEach
    void stop() throws Exception {
        if (io != null) {
            io.close();
        }
        if (qsd != null) {
            qsd.close();
        }
    }

    private <T> T on(AioContext ctx, Callable<T> c) {
        return AioContext.await(ctx.callOn(c), T);
    }

    @Test
    void negotiatesSetsUpTwoQueuesAndMovesDataThroughAFileExport() throws Exception {
        Path img = dir.resolve("disk.img");
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(16 << 20);
        }
        String sock = dir.resolve("qsd.sock").toString();
        qsd = QemuStorageDaemon.start(dir, "--blockdev", "driver=file,node-name=f0,filename=" + img,
                "--export", "type=vhost-user-blk,id=e0,node-name=f0,addr.type=unix,addr.path=" + sock
                        + ",writable=on,num-queues=2");
        io = IoThread.start("frontend", AioOptions.DEFAULT);
        AioContext ctx = io.ctx();
        try (VhostUserTransport t = VhostUserTransport.connect(ctx, sock, T);
             GuestBlkDriver g = GuestBlkDriver.attach(t, GuestBlkDriver.Options.defaults().withQueues(2)
                     .withSlots(4).withMaxDataBytes(4096))) {
            VhostUserFrontend fe = t.frontend();
            long pf = on(ctx, fe::protocolFeatures);
            assertThat(VhostUserProtocolFeature.has(pf, VhostUserProtocolFeature.MQ)).isTrue();
            assertThat(VhostUserProtocolFeature.has(pf, VhostUserProtocolFeature.REPLY_ACK)).isTrue();
            assertThat(VhostUserProtocolFeature.has(pf, VhostUserProtocolFeature.CONFIG)).isTrue();
            assertThat(on(ctx, fe::backendQueues)).isEqualTo(2);
            assertThat(on(ctx, fe::numQueues)).isEqualTo(2);
            assertThat(on(ctx, fe::capacitySectors)).isEqualTo((16 << 20) / 512);
            assertThat(on(ctx, fe::maxMemSlots)).isPositive();
            assertThat(on(ctx, fe::deviceFeatures) & VERSION_1).isNotZero();
            if (VhostUserProtocolFeature.has(pf, VhostUserProtocolFeature.INFLIGHT_SHMFD)) {
                assertThat(on(ctx, fe::inflight)).as("GET_INFLIGHT_FD answered").isNotNull();
            }
            System.out.println("qemu-storage-daemon protocol features (wanted ones): " + VhostUserProtocolFeature.describe(pf));

            GuestBlkQueue q0 = g.queue(0);
            GuestBlkQueue q1 = g.queue(1);
            BlkSlot w = q0.acquire();
            for (int i = 0; i < 4096; i++) {
                w.data().set(ValueLayout.JAVA_BYTE, i, (byte) (i * 7 + 3));
            }
            q0.postWrite(w, 16, 4096, 1);
            assertThat(complete(q0)).isEqualTo(BlkWireLayout.S_OK);
            q0.postFlush(w);
            assertThat(complete(q0)).isEqualTo(BlkWireLayout.S_OK);

            BlkSlot r = q1.acquire();
            q1.postRead(r, 16, 4096, 1);
            assertThat(complete(q1)).isEqualTo(BlkWireLayout.S_OK);
            assertThat(r.data().asSlice(0, 4096).mismatch(w.data().asSlice(0, 4096))).isEqualTo(-1);

            byte[] onDisk = new byte[4096];
            try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "r")) {
                f.seek(16 * 512);
                f.readFully(onDisk);
            }
            assertThat(MemorySegment.ofArray(onDisk).mismatch(w.data().asSlice(0, 4096))).isEqualTo(-1);

            // GET_VRING_BASE: the next avail index of each queue (two requests on queue 0, one on queue 1).
            assertThat(t.stopQueue(0)).isEqualTo(2);
            assertThat(t.stopQueue(1)).isEqualTo(1);
            assertThat(t.needsResetReason()).isNull();
        }
        assertThat(Files.exists(img)).isTrue();
    }

    /** Kicks and waits (bounded) for the one request in flight on {@code q}; returns its status. */
    private static int complete(GuestBlkQueue q) {
        int[] status = {-1};
        q.onCompletion((slot, st, len) -> status[0] = st);
        q.kick();
        long deadline = System.nanoTime() + T.toNanos();
        while (q.reap() == 0) {
            assertThat(System.nanoTime()).as("completion within " + T).isLessThan(deadline);
            q.enableInterrupts();
            q.awaitInterrupt(100);
        }
        return status[0];
    }

    @Test
    void theGuestHarnessRunsAVerifiedWorkloadThroughTheTransport() throws Exception {
        Path img = dir.resolve("disk2.img");
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(32 << 20);
        }
        String sock = dir.resolve("qsd2.sock").toString();
        qsd = QemuStorageDaemon.start(dir, "--blockdev", "driver=file,node-name=f0,filename=" + img + ",cache.direct=on,aio=native",
                "--export", "type=vhost-user-blk,id=e0,node-name=f0,addr.type=unix,addr.path=" + sock
                        + ",writable=on,num-queues=2");
        try (VhostUserTransport t = VhostUserTransport.connect(sock, T);
             GuestBlkDriver g = GuestBlkDriver.attach(t, GuestBlkDriver.Options.defaults().withQueues(2).withSlots(16)
                     .withMaxDataBytes(16384))) {
            assertThat(g.config().capacitySectors()).isEqualTo((32 << 20) / 512);
            assertThat(g.config().numQueues()).isEqualTo(2);
            WorkloadResult r = WorkloadRun.start(g, Workload.of(Workload.Pattern.RANDRW).withBlockSize(16384).withQueueDepth(16)
                    .withRequests(2000).withVerify(true).withSeed(11)).await(Duration.ofSeconds(60));
            assertThat(r.error()).isNull();
            assertThat(r.total().verifyFailures).isZero();
            assertThat(r.total().verifiedSectors).isPositive();
            assertThat(r.perQueue()).allSatisfy(s -> assertThat(s.completed).isPositive());
            assertThat(t.needsResetReason()).isNull();
        }
    }
}
