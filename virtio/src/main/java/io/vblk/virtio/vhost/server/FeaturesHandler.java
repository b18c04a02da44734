package io.vblk.virtio.vhost.server;

import io.vblk.virtio.device.VirtioDevice;
import io.vblk.virtio.queue.VirtioFeatures;
import io.vblk.virtio.vhost.wire.VhostUserCodec;
import io.vblk.virtio.vhost.wire.VhostUserMessage;
import io.vblk.virtio.vhost.wire.VhostUserProtocolException;

import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.BACKEND_REQ;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.CONFIG;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.CONFIGURE_MEM_SLOTS;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.F_LOG_ALL;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.F_PROTOCOL_FEATURES;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.INFLIGHT_SHMFD;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.LOG_SHMFD;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.MQ;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.REPLY_ACK;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.RESET_DEVICE;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.STATUS;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.bit;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.describe;
import static io.vblk.virtio.vhost.wire.VhostUserProtocolFeature.has;

/**
 * Home thread: the session's control context. No locking.
 *
 * <p>Feature negotiation: GET/SET_FEATURES (the device's virtio features plus
 * VHOST_USER_F_PROTOCOL_FEATURES and VHOST_F_LOG_ALL), GET/SET_PROTOCOL_FEATURES, SET_OWNER and
 * GET_QUEUE_NUM. A feature set without VIRTIO_F_VERSION_1 is refused as a protocol error (the
 * connection closes). LOG_ALL switches dirty logging on and off (live migration): the running
 * queues stop (their in-flight requests finish), and start again logging or not.
 */
final class FeaturesHandler {
    private static final System.Logger LOG = System.getLogger(FeaturesHandler.class.getName());

    /**
     * Protocol features offered: MQ, LOG_SHMFD, REPLY_ACK, BACKEND_REQ, CONFIG, INFLIGHT_SHMFD,
     * RESET_DEVICE, CONFIGURE_MEM_SLOTS, STATUS (bits 0, 1, 3, 5, 9, 12, 13, 15, 16).
     */
    static final long OFFERED_PROTOCOL_FEATURES = bit(MQ) | bit(LOG_SHMFD) | bit(REPLY_ACK) | bit(BACKEND_REQ) | bit(CONFIG)
            | bit(INFLIGHT_SHMFD) | bit(RESET_DEVICE) | bit(CONFIGURE_MEM_SLOTS) | bit(STATUS);
    /** The vhost-user bits of the feature word, never handed to the device. */
    private static final long VHOST_BITS = bit(F_PROTOCOL_FEATURES) | bit(F_LOG_ALL);

    private final VhostUserSession session;
    private final Vrings vrings;
    private final VirtioDevice device;
    private long ackedFeatures;
    private long protocolFeatures;

    FeaturesHandler(VhostUserSession session, Vrings vrings, VirtioDevice device) {
        this.session = session;
        this.vrings = vrings;
        this.device = device;
    }

    long protocolFeatures() {
        return protocolFeatures;
    }

    private long offeredFeatures() {
        return device.deviceFeatures() | bit(F_PROTOCOL_FEATURES) | bit(F_LOG_ALL);
    }

    boolean getFeatures(VhostUserMessage m, MessageFds fds) {
        return session.reply(m, VhostUserCodec.u64(offeredFeatures()));
    }

    boolean setFeatures(VhostUserMessage m, MessageFds fds) throws VhostUserProtocolException {
        long f = VhostUserCodec.decodeU64(m);
        long offered = offeredFeatures();
        if ((f & ~offered) != 0) {
            throw new VhostUserProtocolException(m.describe() + ": feature bits 0x" + Long.toHexString(f & ~offered)
                    + " were not offered (offered 0x" + Long.toHexString(offered) + ")");
        }
        if ((f & bit(VirtioFeatures.VERSION_1)) == 0) {
            // A legacy driver (virtio 1.2 section 7: guest-endian rings, no VERSION_1) would be served
            // with the modern layout vblk implements. libvhost-user refuses this feature set
            // ("virtio legacy devices aren't supported", vu_panic: the connection ends); so does vblk.
            throw new VhostUserProtocolException(m.describe() + ": features 0x" + Long.toHexString(f)
                    + " lack VIRTIO_F_VERSION_1 (bit 32): legacy drivers are not supported");
        }
        if (f == ackedFeatures && (f & ~VHOST_BITS) == device.driverFeatures()) {
            // QEMU sends the features again at every device start; nothing changes.
            return session.ack(m, true);
        }
        // The device takes new features only with its queues stopped; running rings restart after
        // (logging or not: QEMU waits for this ack before it starts sending memory).
        return session.stopThen(m, vrings.active(), () -> {
            try {
                device.setDriverFeatures(f & ~VHOST_BITS);
            } catch (IllegalArgumentException e) {
                throw new VhostUserProtocolException(m.describe() + ": " + e.getMessage());
            }
            ackedFeatures = f;
            vrings.protocolFeaturesAcked = (f & bit(F_PROTOCOL_FEATURES)) != 0;
            LOG.log(System.Logger.Level.INFO, () -> session.name() + ": features 0x" + Long.toHexString(f)
                    + " acked, " + (VirtioFeatures.has(f, VirtioFeatures.RING_PACKED) ? "packed" : "split") + " rings");
            setLogAll((f & bit(F_LOG_ALL)) != 0);
            vrings.startReady();
            return null;
        }, null);
    }

    boolean getProtocolFeatures(VhostUserMessage m, MessageFds fds) {
        return session.reply(m, VhostUserCodec.u64(OFFERED_PROTOCOL_FEATURES));
    }

    boolean setProtocolFeatures(VhostUserMessage m, MessageFds fds) throws VhostUserProtocolException {
        long f = VhostUserCodec.decodeU64(m);
        if ((f & ~OFFERED_PROTOCOL_FEATURES) != 0) {
            throw new VhostUserProtocolException(m.describe() + ": protocol features "
                    + describe(f & ~OFFERED_PROTOCOL_FEATURES) + " were not offered (offered: "
                    + describe(OFFERED_PROTOCOL_FEATURES) + ")");
        }
        protocolFeatures = f;
        return session.ack(m, true);
    }

    /**
     * SET_BACKEND_REQ_FD: "Set the socket file descriptor for back-end initiated requests. It is
     * passed in the ancillary data. This request should be sent only when
     * VHOST_USER_F_PROTOCOL_FEATURES has been negotiated, and protocol feature bit
     * VHOST_USER_PROTOCOL_F_BACKEND_REQ bit is present in VHOST_USER_GET_PROTOCOL_FEATURES."
     */
    boolean setBackendReqFd(VhostUserMessage m, MessageFds fds) throws VhostUserProtocolException {
        if (!has(protocolFeatures, BACKEND_REQ)) {
            throw new VhostUserProtocolException(m.describe() + " without VHOST_USER_PROTOCOL_F_BACKEND_REQ negotiated");
        }
        session.backendChannel(fds.take(0));
        return session.ack(m, true);
    }

    boolean setOwner(VhostUserMessage m, MessageFds fds) {
        return session.ack(m, true);
    }

    boolean getQueueNum(VhostUserMessage m, MessageFds fds) {
        return session.reply(m, VhostUserCodec.u64(device.numQueues()));
    }

    /** Device reset: the features are negotiated anew. */
    void reset() {
        ackedFeatures = 0;
        vrings.protocolFeaturesAcked = false;
        if (vrings.logAll) {
            vrings.logAll = false;
            LOG.log(System.Logger.Level.INFO, () -> vrings.name() + ": dirty logging off (device reset)");
        }
    }

    /** VHOST_F_LOG_ALL on or off; the queues pick it up at their next start. */
    private void setLogAll(boolean on) {
        if (on == vrings.logAll) {
            return;
        }
        vrings.logAll = on;
        LogHandler.Area log = vrings.log;
        LOG.log(System.Logger.Level.INFO, () -> vrings.name() + ": dirty logging " + (on ? "on" : "off")
                + " (VHOST_F_LOG_ALL " + (on ? "set" : "cleared") + ")" + (!on ? ""
                : log == null ? ": no log was set with SET_LOG_BASE, so nothing is marked until one is"
                : ": every guest page the queues write is marked in the " + log.bitmap().byteSize() + "-byte log"));
    }
}
