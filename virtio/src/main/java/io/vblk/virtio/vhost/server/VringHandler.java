package io.vblk.virtio.vhost.server;

import io.vblk.virtio.device.VirtioDevice;
import io.vblk.virtio.queue.VirtQueue;
import io.vblk.virtio.vhost.wire.VhostUserCodec;
import io.vblk.virtio.vhost.wire.VhostUserCodec.VringAddr;
import io.vblk.virtio.vhost.wire.VhostUserMessage;
import io.vblk.virtio.vhost.wire.VhostUserMessageLayout;
import io.vblk.virtio.vhost.wire.VhostUserProtocolException;
import io.vblk.virtio.vhost.wire.VhostUserRequest;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Home thread: the session's control context. No locking.
 *
 * <p>Vring set-up (vhost-user.rst "Ring states"): SET_VRING_NUM / BASE / ADDR describe a ring,
 * SET_VRING_KICK starts it, SET_VRING_CALL / ERR give its notification fds, SET_VRING_ENABLE
 * enables or disables it and GET_VRING_BASE stops it, replying once the device queue has finished
 * its in-flight requests. A change a running queue cannot take in place stops it first and
 * restarts it after.
 */
final class VringHandler {
    private static final System.Logger LOG = System.getLogger(VringHandler.class.getName());
    private final VhostUserSession session;
    private final Vrings vrings;
    private final VirtioDevice device;

    VringHandler(VhostUserSession session, Vrings vrings, VirtioDevice device) {
        this.session = session;
        this.vrings = vrings;
        this.device = device;
    }

    boolean setVringNum(VhostUserMessage m, MessageFds fds) throws VhostUserProtocolException {
        VhostUserCodec.VringState s = VhostUserCodec.decodeVringState(m);
        int q = vrings.queueIndex(m, Integer.toUnsignedLong(s.index()));
        int max = device.maxQueueSize();
        // Virtio 1.x 2.7: "Queue Size value is always a power of 2. The maximum Queue Size value is 32768."
        if (s.num() <= 0 || s.num() > max || Integer.bitCount(s.num()) != 1) {
            throw new VhostUserProtocolException(m.describe() + ": queue " + q + " size " + Integer.toUnsignedString(s.num())
                    + " is not a power of two up to " + max);
        }
        vrings.requireStopped(m, q);
        vrings.get(q).size = s.num();
        return session.ack(m, true);
    }

    boolean setVringBase(VhostUserMessage m, MessageFds fds) throws VhostUserProtocolException {
        VhostUserCodec.VringState s = VhostUserCodec.decodeVringState(m);
        int q = vrings.queueIndex(m, Integer.toUnsignedLong(s.index()));
        // A split ring's avail index is 16 bits. A packed ring's value is two 16-bit halves, each an
        // index with its wrap counter in bit 15 (vhost-user.rst "Vring descriptor indices for
        // packed virtqueues"); the queue checks the index against the ring size when it starts.
        boolean packed = VirtQueue.packed(device.driverFeatures());
        if (!packed && (s.num() < 0 || s.num() > 0xffff)) {
            throw new VhostUserProtocolException(m.describe() + ": queue " + q + " base " + Integer.toUnsignedString(s.num())
                    + " is not a 16-bit split-ring index");
        }
        vrings.requireStopped(m, q);
        vrings.get(q).base = s.num();
        if (s.num() != 0) {
            // A ring taken over mid-stream (a migration's destination, a reconnection): say where.
            LOG.log(System.Logger.Level.INFO, () -> vrings.name() + ": queue " + q + " resumes at avail index " + s.num()
                    + " (SET_VRING_BASE)");
        }
        return session.ack(m, true);
    }

    boolean setVringAddr(VhostUserMessage m, MessageFds fds) throws VhostUserProtocolException {
        VringAddr a = VhostUserCodec.decodeVringAddr(m);
        int q = vrings.queueIndex(m, Integer.toUnsignedLong(a.index()));
        if ((a.flags() & ~VhostUserMessageLayout.VRING_F_LOG) != 0) {
            throw new VhostUserProtocolException(m.describe() + ": queue " + q + " flags 0x" + Integer.toHexString(a.flags())
                    + ": only VHOST_VRING_F_LOG (bit 0) is defined");
        }
        VringState r = vrings.get(q);
        return whenStopped(m, r, () -> {
            r.addr = a;
            vrings.startReady();
            return null;
        }, null);
    }

    boolean getVringBase(VhostUserMessage m, MessageFds fds) throws VhostUserProtocolException {
        VhostUserCodec.VringState s = VhostUserCodec.decodeVringState(m);
        int q = vrings.queueIndex(m, Integer.toUnsignedLong(s.index()));
        VringState r = vrings.get(q);
        return session.stopThen(m, new int[]{q}, () -> {
            r.stopped();
            // The hand-over point (a VM stop, or the end of a migration): nothing is in flight any
            // more, every completion is in the used ring (and, while logging, in the dirty log).
            LOG.log(System.Logger.Level.INFO, () -> vrings.name() + ": queue " + q
                    + " handed over: GET_VRING_BASE = " + r.base + ", no request in flight"
                    + (vrings.logAll ? " (dirty logging on: the migration's last sync follows)" : ""));
            return VhostUserMessage.reply(m.request(), VhostUserCodec.vringState(q, r.base));
        }, null);
    }

    /** SET_VRING_KICK / CALL / ERR; the framer matched the fd count to the VRING_NOFD bit (FdRule.UNLESS_NOFD). */
    boolean setVringFd(VhostUserMessage m, MessageFds fds) throws VhostUserProtocolException {
        long u = VhostUserCodec.decodeU64(m);
        if ((u & ~(VhostUserMessageLayout.VRING_IDX_MASK | VhostUserMessageLayout.VRING_NOFD)) != 0) {
            throw new VhostUserProtocolException(m.describe() + ": reserved bits set in 0x" + Long.toHexString(u));
        }
        int q = vrings.queueIndex(m, u & VhostUserMessageLayout.VRING_IDX_MASK);
        // "This flag is set when there is no file descriptor in the ancillary data"; one sent anyway is closed untaken.
        int fd = (u & VhostUserMessageLayout.VRING_NOFD) != 0 ? -1 : fds.take(0);
        if (fd >= 0 && !isEventFd(fd)) {
            // The queue would register it with epoll (kick) or write 8-byte counts to it (call,
            // err): vhost-user.rst says these are eventfds. /dev/null or a directory is refused here
            // rather than failing later inside the queue.
            String what = describeFd(fd);
            VringState.closeFd(fd);
            throw new VhostUserProtocolException(m.describe() + ": queue " + q + " fd is " + what + ", not an eventfd");
        }
        VringState r = vrings.get(q);
        if (m.kind() == VhostUserRequest.SET_VRING_ERR) {
            r.setErr(fd);
            return session.ack(m, true);
        }
        boolean kick = m.kind() == VhostUserRequest.SET_VRING_KICK;
        if (r.run == VringState.Run.RUNNING && fd >= 0) {
            // Switched in place: the queue goes on, its thread swaps the fd between two passes
            // (a completion notifies through the old fd or the new one, never neither).
            if (kick) {
                r.setKick(fd);
            } else {
                r.setCall(fd);
            }
            vrings.replaceFds(r);
            return session.ack(m, true);
        }
        // An idle or stopping queue takes the fd at its next start.
        return whenStopped(m, r, () -> {
            if (kick) {
                r.setKick(fd);
            } else {
                r.setCall(fd);
            }
            vrings.startReady();
            return null;
        }, () -> VringState.closeFd(fd));
    }

    boolean setVringEnable(VhostUserMessage m, MessageFds fds) throws VhostUserProtocolException {
        VhostUserCodec.VringState s = VhostUserCodec.decodeVringState(m);
        int q = vrings.queueIndex(m, Integer.toUnsignedLong(s.index()));
        if (s.num() != 0 && s.num() != 1) {
            throw new VhostUserProtocolException(m.describe() + ": queue " + q + " enable value " + s.num() + ", expected 0 or 1");
        }
        VringState r = vrings.get(q);
        if (s.num() == 1) {
            r.enabled = true;
            vrings.startReady();
            return session.ack(m, true);
        }
        return session.stopThen(m, new int[]{q}, () -> {
            r.enabled = false;
            return null;
        }, null);
    }

    /** True when {@code fd} is an eventfd (the kernel names it anon_inode:[eventfd]). */
    static boolean isEventFd(int fd) {
        return "anon_inode:[eventfd]".equals(describeFd(fd));
    }

    private static String describeFd(int fd) {
        try {
            return Files.readSymbolicLink(Path.of("/proc/self/fd/" + fd)).toString();
        } catch (IOException | UnsupportedOperationException e) {
            return "unreadable (" + e.getMessage() + ")";
        }
    }

    /** Applies {@code change} at once on an idle ring; a running one is stopped first and restarted by the change. */
    private boolean whenStopped(VhostUserMessage m, VringState r, VhostUserSession.Finish change,
                                Runnable abandon) throws VhostUserProtocolException {
        if (r.run == VringState.Run.IDLE) {
            change.run();
            return session.ack(m, true);
        }
        return session.stopThen(m, new int[]{r.index}, change, abandon);
    }

}
