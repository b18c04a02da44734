package io.vblk.virtio.vhost.server;

import io.vblk.virtio.device.VirtioDevice;
import io.vblk.virtio.vhost.wire.VhostUserCodec;
import io.vblk.virtio.vhost.wire.VhostUserMessage;
import io.vblk.virtio.vhost.wire.VhostUserProtocolException;

/**
 * Home thread: the session's control context. No locking.
 *
 * <p>Device status and reset: SET_STATUS / GET_STATUS (protocol feature STATUS), RESET_DEVICE and
 * the deprecated RESET_OWNER. Every reset first stops all queues (waiting for their in-flight
 * requests).
 */
final class StatusHandler {
    /** Virtio device status bit NEEDS_RESET (virtio 1.x 2.1). */
    static final int STATUS_NEEDS_RESET = 64;

    private final VhostUserSession session;
    private final Vrings vrings;
    private final VirtioDevice device;
    private final FeaturesHandler features;
    private int status;

    StatusHandler(VhostUserSession session, Vrings vrings, VirtioDevice device, FeaturesHandler features) {
        this.session = session;
        this.vrings = vrings;
        this.device = device;
        this.features = features;
    }

    boolean setStatus(VhostUserMessage m, MessageFds fds) throws VhostUserProtocolException {
        long s = VhostUserCodec.decodeU64(m);
        if (s < 0 || s > 0xff) {
            throw new VhostUserProtocolException(m.describe() + ": status 0x" + Long.toHexString(s)
                    + " is not a virtio status byte");
        }
        if (s == 0) {
            // Virtio 1.x 2.1: "Writing 0 into this field resets the device." The rings keep their
            // next avail index: QEMU 7.2's vhost_dev_stop sends SET_STATUS 0 before GET_VRING_BASE
            // and takes that answer as the queue's last_avail_idx, which a migration carries to the
            // destination (every start sends SET_VRING_BASE anyway).
            return session.stopThen(m, vrings.all(), () -> {
                device.reset();
                vrings.resetAll(true);
                features.reset();
                status = 0;
                return null;
            }, null);
        }
        status = (int) s;
        return session.ack(m, true);
    }

    boolean getStatus(VhostUserMessage m, MessageFds fds) {
        return session.reply(m, VhostUserCodec.u64(status | (device.needsReset() ? STATUS_NEEDS_RESET : 0)));
    }

    boolean resetDevice(VhostUserMessage m, MessageFds fds) throws VhostUserProtocolException {
        return session.stopThen(m, vrings.all(), () -> {
            device.reset();
            vrings.resetAll(false);
            features.reset();
            status = 0;
            return null;
        }, null);
    }

    /** Deprecated; vhost-user.rst recommends "use it to disable all rings". */
    boolean resetOwner(VhostUserMessage m, MessageFds fds) throws VhostUserProtocolException {
        return session.stopThen(m, vrings.all(), () -> {
            for (int q = 0; q < vrings.count(); q++) {
                vrings.get(q).enabled = false;
                vrings.get(q).kicked = false;
            }
            return null;
        }, null);
    }
}
