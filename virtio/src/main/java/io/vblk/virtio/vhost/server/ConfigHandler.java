package io.vblk.virtio.vhost.server;

import io.vblk.virtio.device.VirtioDevice;
import io.vblk.virtio.vhost.wire.VhostUserCodec;
import io.vblk.virtio.vhost.wire.VhostUserCodec.ConfigSpace;
import io.vblk.virtio.vhost.wire.VhostUserMessage;
import io.vblk.virtio.vhost.wire.VhostUserMessageLayout;
import io.vblk.virtio.vhost.wire.VhostUserProtocolException;

/**
 * Home thread: the session's control context. No locking.
 *
 * <p>The device configuration space: GET_CONFIG and SET_CONFIG (protocol feature CONFIG).
 */
final class ConfigHandler {
    private static final System.Logger LOG = System.getLogger(ConfigHandler.class.getName());

    private final VhostUserSession session;
    private final String name;
    private final VirtioDevice device;

    ConfigHandler(VhostUserSession session, String name, VirtioDevice device) {
        this.session = session;
        this.name = name;
        this.device = device;
    }

    boolean getConfig(VhostUserMessage m, MessageFds fds) throws VhostUserProtocolException {
        ConfigSpace c = VhostUserCodec.decodeConfig(m);
        long end = Integer.toUnsignedLong(c.offset()) + c.size();
        if (end > VhostUserMessageLayout.MAX_CONFIG_BYTES) {
            // "vhost-user back-end uses zero length of payload to indicate an error".
            LOG.log(System.Logger.Level.WARNING, () -> name + ": " + m.describe() + " of " + c.size() + " bytes at offset "
                    + Integer.toUnsignedString(c.offset()) + " is beyond the config space; replying with an error");
            return session.reply(m, new byte[0]);
        }
        byte[] data = new byte[c.size()];
        // Bytes past the device's config space read as zero: a front-end with a newer, longer
        // virtio_blk_config sees the fields of features that were not offered as 0.
        int have = (int) Math.max(0, Math.min(c.size(), device.configSize() - (long) c.offset()));
        if (have > 0) {
            byte[] tmp = new byte[have];
            device.readConfig(c.offset(), tmp, have);
            System.arraycopy(tmp, 0, data, 0, have);
        }
        return session.reply(m, VhostUserCodec.config(c.offset(), c.flags(), data));
    }

    boolean setConfig(VhostUserMessage m, MessageFds fds) throws VhostUserProtocolException {
        ConfigSpace c = VhostUserCodec.decodeConfig(m);
        long end = Integer.toUnsignedLong(c.offset()) + c.size();
        boolean ok = end <= device.configSize() && device.writeConfig(c.offset(), c.data(), c.size());
        if (!ok) {
            // Not a protocol error: the guest wrote a field that is not writable. Refused, logged, acked as failed.
            LOG.log(System.Logger.Level.WARNING, () -> name + ": " + m.describe() + " of " + c.size() + " bytes at offset "
                    + Integer.toUnsignedString(c.offset()) + " refused: only device-writable fields may change");
        }
        return session.ack(m, ok);
    }
}
