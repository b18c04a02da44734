package io.vblk.guest.vhost;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.IoThread;
import io.vblk.aio.sys.Sys;
import io.vblk.guest.GuestBlkDriver;
import io.vblk.guest.Workload;
import io.vblk.guest.WorkloadResult;
import io.vblk.guest.WorkloadRun;
import io.vblk.virtio.vhost.QemuStorageDaemon;
import io.vblk.virtio.vhost.TestBlkRing;
import io.vblk.virtio.vhost.wire.VhostUserProtocolFeature;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.RandomAccessFile;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The front-end against the reference back-end, qemu-storage-daemon: this checks vblk's reading
 * of the vhost-user protocol independently of vblk's own server. Negotiation, config space,
 * SET_MEM_TABLE with a memfd, the inflight buffer, ring set-up on two queues, real I/O through
 * the rings into an image file, and GET_VRING_BASE.
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
        VhostUserFrontend fe = AioContext.await(VhostUserFrontend.connect(ctx, sock,
                VhostUserFrontend.Options.defaults(1 << 20)), T);

        long pf = fe.protocolFeatures();
        assertThat(VhostUserProtocolFeature.has(pf, VhostUserProtocolFeature.MQ)).isTrue();
        assertThat(VhostUserProtocolFeature.has(pf, VhostUserProtocolFeature.REPLY_ACK)).isTrue();
        assertThat(VhostUserProtocolFeature.has(pf, VhostUserProtocolFeature.CONFIG)).isTrue();
        assertThat(fe.backendQueues()).isEqualTo(2);
        assertThat(fe.numQueues()).isEqualTo(2);
        assertThat(fe.capacitySectors()).isEqualTo((16 << 20) / 512);
        assertThat(fe.maxMemSlots()).isPositive();
        assertThat(fe.deviceFeatures() & VERSION_1).isNotZero();

        TestBlkRing q0 = new TestBlkRing(fe.memory(), 0x1000, 16);
        TestBlkRing q1 = new TestBlkRing(fe.memory(), q0.end(), 16);
        long buf = q1.end() + 4096;
        try (q0; q1) {
            CompletableFuture<Void> started = new CompletableFuture<>();
            on(ctx, () -> {
                fe.setDriverFeatures(VERSION_1);
                fe.setMemory(fe.memory());
                fe.configureQueue(0, q0.layout(0));
                fe.setQueueFds(0, Sys.dup(q0.kickFd), Sys.dup(q0.callFd));
                fe.configureQueue(1, q1.layout(0));
                fe.setQueueFds(1, Sys.dup(q1.kickFd), Sys.dup(q1.callFd));
                fe.startQueue(0, () -> { });
                fe.startQueue(1, () -> started.complete(null));
                return null;
            });
            AioContext.await(started, T);
            if (VhostUserProtocolFeature.has(pf, VhostUserProtocolFeature.INFLIGHT_SHMFD)) {
                assertThat(fe.inflight()).as("GET_INFLIGHT_FD answered").isNotNull();
                assertThat(fe.inflight().mmapSize()).isPositive();
            }
            System.out.println("qemu-storage-daemon protocol features (wanted ones): " + VhostUserProtocolFeature.describe(pf));

            MemorySegment data = q0.at(buf, 4096);
            for (int i = 0; i < 4096; i++) {
                data.set(java.lang.foreign.ValueLayout.JAVA_BYTE, i, (byte) (i * 7 + 3));
            }
            q0.post(TestBlkRing.VIRTIO_BLK_T_OUT, 16, buf, 4096);
            assertThat(q0.awaitCompletion(10_000)).isEqualTo(TestBlkRing.VIRTIO_BLK_S_OK);
            q0.post(TestBlkRing.VIRTIO_BLK_T_FLUSH, 0, 0, 0);
            assertThat(q0.awaitCompletion(10_000)).isEqualTo(TestBlkRing.VIRTIO_BLK_S_OK);

            long back = buf + 8192;
            q1.post(TestBlkRing.VIRTIO_BLK_T_IN, 16, back, 4096);
            assertThat(q1.awaitCompletion(10_000)).isEqualTo(TestBlkRing.VIRTIO_BLK_S_OK);
            assertThat(q1.at(back, 4096).mismatch(data)).isEqualTo(-1);

            byte[] onDisk = new byte[4096];
            try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "r")) {
                f.seek(16 * 512);
                f.readFully(onDisk);
            }
            assertThat(MemorySegment.ofArray(onDisk).mismatch(data)).isEqualTo(-1);

            CompletableFuture<Integer> base0 = new CompletableFuture<>();
            CompletableFuture<Integer> base1 = new CompletableFuture<>();
            on(ctx, () -> {
                fe.stopQueue(0, base0::complete);
                fe.stopQueue(1, base1::complete);
                return null;
            });
            assertThat(AioContext.await(base0, T)).isEqualTo(2);
            assertThat(AioContext.await(base1, T)).isEqualTo(1);
            assertThat(on(ctx, fe::needsReset)).isFalse();
            on(ctx, () -> {
                fe.close();
                return null;
            });
        }
        assertThat(Files.exists(img)).isTrue();
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
