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
    private final Vrings vrings;
    private final int deviceQueues;
    private InflightBuffer buffer;

    InflightHandler(VhostUserSession session, String name, Vrings vrings) {
        this.session = session;
        this.name = name;
        this.vrings = vrings;
        this.deviceQueues = vrings.count();
    }

    boolean getInflightFd(VhostUserMessage m, MessageFds fds) throws VhostUserProtocolException {
        Inflight in = VhostUserCodec.decodeInflight(m);
        InflightBuffer.checkGeometry(m.describe(), in.numQueues(), in.queueSize(), deviceQueues);
        requireIdle(m);
        // QEMU sets the features before GET_INFLIGHT_FD (vhost_dev_prepare_inflight): the layout follows the ring type.
        replace(InflightBuffer.create(in.numQueues(), in.queueSize(), vrings.packed()));
        // The fd is copied into the front-end by sendmsg; the back-end keeps its own.
        return session.reply(m, VhostUserCodec.inflight(new Inflight(buffer.size(), 0, in.numQueues(), in.queueSize())),
                buffer.fd());
    }

    boolean setInflightFd(VhostUserMessage m, MessageFds fds) throws VhostUserProtocolException {
        Inflight in = VhostUserCodec.decodeInflight(m);
        InflightBuffer.checkGeometry(m.describe(), in.numQueues(), in.queueSize(), deviceQueues);
        requireIdle(m);
        InflightBuffer b = InflightBuffer.adopt(fds.take(0), in.mmapSize(), in.mmapOffset(), in.numQueues(), in.queueSize(),
                vrings.packed());
        int marked = b.markedInflight();
        if (marked > 0) {
            LOG.log(System.Logger.Level.INFO, () -> name + ": the inflight buffer handed back lists " + marked
                    + " request(s) in flight; they are executed again when their queues start");
        }
        replace(b);
        return session.ack(m, true);
    }

    /** The records live in the buffer: it changes only while no queue runs on it. */
    private void requireIdle(VhostUserMessage m) throws VhostUserProtocolException {
        int[] running = vrings.active();
        if (running.length > 0) {
            throw new VhostUserProtocolException(m.describe() + ": queue " + running[0]
                    + " is running on the current inflight buffer; stop it with GET_VRING_BASE first");
        }
    }

    private void replace(InflightBuffer b) {
        vrings.inflight = b;
        if (buffer != null) {
            buffer.close();
        }
        buffer = b;
    }

    @Override
    public void close() {
        vrings.inflight = null;
        if (buffer != null) {
            buffer.close();
            buffer = null;
        }
    }
}
