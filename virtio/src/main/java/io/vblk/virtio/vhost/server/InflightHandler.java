package io.vblk.virtio.vhost.server;

import io.vblk.virtio.vhost.wire.VhostUserCodec;
import io.vblk.virtio.vhost.wire.VhostUserCodec.Inflight;
import io.vblk.virtio.vhost.wire.VhostUserMessage;
import io.vblk.virtio.vhost.wire.VhostUserProtocolException;

/**
 * Home thread: the session's control context. No locking.
 *
 * <p>The inflight-tracking buffer (protocol feature INFLIGHT_SHMFD): GET_INFLIGHT_FD creates it,
 * SET_INFLIGHT_FD takes one back; see {@link InflightBuffer} for what vblk keeps in it.
 */
final class InflightHandler implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(InflightHandler.class.getName());

    private final VhostUserSession session;
    private final String name;
    private final int deviceQueues;
    private InflightBuffer buffer;

    InflightHandler(VhostUserSession session, String name, int deviceQueues) {
        this.session = session;
        this.name = name;
        this.deviceQueues = deviceQueues;
    }

    boolean getInflightFd(VhostUserMessage m, MessageFds fds) throws VhostUserProtocolException {
        Inflight in = VhostUserCodec.decodeInflight(m);
        InflightBuffer.checkGeometry(m.describe(), in.numQueues(), in.queueSize(), deviceQueues);
        replace(InflightBuffer.create(in.numQueues(), in.queueSize()));
        // The fd is copied into the front-end by sendmsg; the back-end keeps its own.
        return session.reply(m, VhostUserCodec.inflight(new Inflight(buffer.size(), 0, in.numQueues(), in.queueSize())),
                buffer.fd());
    }

    boolean setInflightFd(VhostUserMessage m, MessageFds fds) throws VhostUserProtocolException {
        Inflight in = VhostUserCodec.decodeInflight(m);
        InflightBuffer.checkGeometry(m.describe(), in.numQueues(), in.queueSize(), deviceQueues);
        InflightBuffer b = InflightBuffer.adopt(fds.take(0), in.mmapSize(), in.mmapOffset(), in.numQueues(), in.queueSize());
        int marked = b.markedInflight();
        if (marked > 0) {
            LOG.log(System.Logger.Level.WARNING, () -> name + ": the inflight buffer handed back lists " + marked
                    + " request(s) in flight; vblk does not resubmit them (the ring restarts from SET_VRING_BASE)");
        }
        replace(b);
        return session.ack(m, true);
    }

    private void replace(InflightBuffer b) {
        if (buffer != null) {
            buffer.close();
        }
        buffer = b;
    }

    @Override
    public void close() {
        if (buffer != null) {
            buffer.close();
            buffer = null;
        }
    }
}
