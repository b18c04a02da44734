package io.vblk.guest.vhost;

import io.vblk.virtio.vhost.wire.VhostUserCodec;
import io.vblk.virtio.vhost.wire.VhostUserCodec.ConfigSpace;
import io.vblk.virtio.vhost.wire.VhostUserRequest;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;

import static io.vblk.guest.vhost.FrontendChannel.decode;
import static io.vblk.guest.vhost.FrontendChannel.u64;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.CONFIG;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.CONFIGURE_MEM_SLOTS;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.F_PROTOCOL_FEATURES;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.INFLIGHT_SHMFD;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.MQ;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.REPLY_ACK;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.bit;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.has;

/**
 * Home thread: the front-end's control context. No locking.
 *
 * <p>The start of a session, in QEMU's order (vhost_dev_init, vhost_user_backend_init):
 * GET_FEATURES; with VHOST_USER_F_PROTOCOL_FEATURES offered, GET_PROTOCOL_FEATURES and
 * SET_PROTOCOL_FEATURES with the wanted subset; GET_QUEUE_NUM (MQ); SET_OWNER;
 * GET_MAX_MEM_SLOTS (CONFIGURE_MEM_SLOTS); GET_CONFIG (CONFIG). The fields hold what the back-end
 * said once {@link #run} has completed.
 */
final class FrontendNegotiation {
    long backendFeatures;
    long protocolFeatures;
    /** VHOST_F_LOG_ALL is on: dirty logging ({@link FrontendMigration}). */
    boolean logAll;
    int backendQueues = 1;
    long maxMemSlots;
    byte[] config = new byte[0];

    /** Runs the exchange on {@code ch}; fails naming the step the back-end got wrong. */
    CompletableFuture<Void> run(FrontendChannel ch, long wantedProtocolFeatures, VhostUserFrontend.Options options) {
        return ch.serial(() -> ch.call(VhostUserRequest.GET_FEATURES, new byte[0])
                .thenCompose(r -> {
                    backendFeatures = u64(r);
                    if (!has(backendFeatures, F_PROTOCOL_FEATURES)) {
                        return done();
                    }
                    return ch.call(VhostUserRequest.GET_PROTOCOL_FEATURES, new byte[0]).thenAccept(p -> {
                        long wanted = options.useInflight() ? wantedProtocolFeatures : wantedProtocolFeatures & ~bit(INFLIGHT_SHMFD);
                        protocolFeatures = u64(p) & wanted;
                        ch.setReplyAck(has(protocolFeatures, REPLY_ACK));
                        ch.send(VhostUserRequest.SET_PROTOCOL_FEATURES, VhostUserCodec.u64(protocolFeatures));
                    });
                })
                .thenCompose(v -> !has(protocolFeatures, MQ) ? done()
                        : ch.call(VhostUserRequest.GET_QUEUE_NUM, new byte[0]).thenAccept(r -> backendQueues = (int) u64(r)))
                .thenCompose(v -> {
                    ch.send(VhostUserRequest.SET_OWNER, new byte[0]);
                    return !has(protocolFeatures, CONFIGURE_MEM_SLOTS) ? done()
                            : ch.call(VhostUserRequest.GET_MAX_MEM_SLOTS, new byte[0]).thenAccept(r -> maxMemSlots = u64(r));
                })
                .thenCompose(v -> !has(protocolFeatures, CONFIG) ? done()
                        : ch.call(VhostUserRequest.GET_CONFIG, VhostUserCodec.config(0, 0, new byte[options.configBytes()]))
                        .thenAccept(r -> {
                            if (r.size() == 0) {
                                // "vhost-user back-end uses zero length of payload to indicate an error".
                                throw new CompletionException(new IllegalStateException(
                                        "GET_CONFIG of " + options.configBytes() + " bytes failed (empty reply)"));
                            }
                            ConfigSpace c = decode(() -> VhostUserCodec.decodeConfig(r));
                            if (c.size() != options.configBytes()) {
                                throw new CompletionException(new IllegalStateException(
                                        "GET_CONFIG reply of " + c.size() + " bytes, asked " + options.configBytes()));
                            }
                            config = c.data();
                        })));
    }

    private static CompletableFuture<Void> done() {
        return CompletableFuture.completedFuture(null);
    }
}
