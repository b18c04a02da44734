package io.vblk.guest.vhost;

import io.vblk.aio.sys.FileIo;
import io.vblk.virtio.vhost.wire.VhostUserCodec;
import io.vblk.virtio.vhost.wire.VhostUserRequest;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.function.Consumer;
import java.util.function.Supplier;

import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.F_LOG_ALL;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.F_PROTOCOL_FEATURES;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.LOG_SHMFD;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.STATUS;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.bit;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.has;

/**
 * Home thread: the front-end's control context. No locking.
 *
 * <p>What QEMU's vhost code does to a back-end during a live migration, for the front-end it belongs
 * to ({@link VhostUserFrontend#migration()}): dirty logging on and off ({@code vhost_migration_log}:
 * SET_LOG_BASE, SET_FEATURES with VHOST_F_LOG_ALL, SET_VRING_ADDR with VHOST_VRING_F_LOG) and the
 * device stop at its end in QEMU 7.2's order ({@code vhost_dev_stop}: SET_STATUS 0 before
 * GET_VRING_BASE).
 */
public final class FrontendMigration {
    /** The vhost-user bits of the feature word that are no device feature. */
    static final long NOT_DEVICE_BITS = bit(F_PROTOCOL_FEATURES) | bit(F_LOG_ALL);
    /** Protocol feature the front-end asks for to migrate (the log is shared memory). */
    static final long WANTED = bit(LOG_SHMFD);

    private final VhostUserFrontend fe;

    FrontendMigration(VhostUserFrontend fe) {
        this.fe = fe;
    }

    /** The SET_FEATURES word for the driver's {@code features}: plus PROTOCOL_FEATURES if offered, plus LOG_ALL while logging. */
    static long wire(FrontendNegotiation n, long features) {
        return features | (n.backendFeatures & bit(F_PROTOCOL_FEATURES)) | (n.logAll ? bit(F_LOG_ALL) : 0);
    }

    /**
     * Starts dirty logging: SET_LOG_BASE with a copy of {@code logFd} and {@code bytes} at offset 0 (waiting for its
     * reply), SET_FEATURES with VHOST_F_LOG_ALL, SET_VRING_ADDR with VHOST_VRING_F_LOG for every started ring (rings
     * started later follow). The caller keeps {@code logFd} and reads the bitmap through its own mapping.
     */
    public CompletableFuture<Void> startDirtyLog(int logFd, long bytes) {
        fe.ctx.assertHome();
        if (!has(fe.negotiated.protocolFeatures, LOG_SHMFD)) {
            throw new IllegalStateException(fe.name + ": the back-end did not offer LOG_SHMFD");
        }
        fe.negotiated.logAll = true;
        long w = wire(fe.negotiated, fe.driverFeatures());
        Supplier<CompletableFuture<Void>> rings = fe.rings.setLogging(fe.memory, true);
        byte[] base = VhostUserCodec.logBase(new VhostUserCodec.LogBase(bytes, 0));
        int copy = FileIo.dup(logFd);
        if (copy < 0) {
            throw new IllegalStateException(fe.name + ": dup of the log fd failed: " + copy);
        }
        return fe.channel.serial(() -> fe.channel.call(VhostUserRequest.SET_LOG_BASE, base, copy)
                .whenComplete((r, e) -> FileIo.close(copy))
                .thenCompose(r -> fe.channel.callAck(VhostUserRequest.SET_FEATURES, VhostUserCodec.u64(w)))
                .thenCompose(v -> rings.get()));
    }

    /** Stops dirty logging (the end or cancel of a migration): SET_FEATURES without LOG_ALL, rings without F_LOG. */
    public CompletableFuture<Void> stopDirtyLog() {
        fe.ctx.assertHome();
        fe.negotiated.logAll = false;
        long w = wire(fe.negotiated, fe.driverFeatures());
        Supplier<CompletableFuture<Void>> rings = fe.rings.setLogging(fe.memory, false);
        return fe.channel.serial(() -> fe.channel.callAck(VhostUserRequest.SET_FEATURES, VhostUserCodec.u64(w))
                .thenCompose(v -> rings.get()));
    }

    /**
     * Stops the whole device as QEMU 7.2's {@code vhost_dev_stop} does at a VM stop or the end of a migration:
     * SET_STATUS 0 first (with STATUS), then SET_VRING_ENABLE 0 (with VHOST_USER_F_PROTOCOL_FEATURES) and
     * GET_VRING_BASE for every started ring. {@code onStopped} gets each ring's answer (-1: a ring not started).
     * The back-end is reset after it: the front-end is done with it (a migration's source closes).
     */
    public void stopDevice(Consumer<int[]> onStopped) {
        fe.ctx.assertHome();
        int[] bases = new int[fe.rings.count()];
        Arrays.fill(bases, -1);
        List<Integer> started = new ArrayList<>();
        List<Supplier<CompletableFuture<Void>>> stops = new ArrayList<>();
        for (int q = 0; q < fe.rings.count(); q++) {
            if (fe.rings.started(q)) {
                int i = q;
                started.add(q);
                stops.add(fe.rings.stop(q, b -> bases[i] = b));
            }
        }
        boolean status0 = has(fe.negotiated.protocolFeatures, STATUS);
        boolean enable = has(fe.negotiated.backendFeatures, F_PROTOCOL_FEATURES);
        fe.channel.background("stop device", () -> {
            CompletableFuture<Void> f = status0 ? fe.channel.callAck(VhostUserRequest.SET_STATUS, VhostUserCodec.u64(0))
                    : CompletableFuture.completedFuture(null);
            for (int k = 0; k < started.size(); k++) {
                int q = started.get(k);
                Supplier<CompletableFuture<Void>> stop = stops.get(k);
                if (enable) {
                    f = f.thenCompose(v -> fe.channel.callAck(VhostUserRequest.SET_VRING_ENABLE, VhostUserCodec.vringState(q, 0)));
                }
                f = f.thenCompose(v -> stop.get());
            }
            return f.thenRun(() -> onStopped.accept(bases));
        });
    }
}
