package io.vblk.virtio.vhost.server;

import io.vblk.aio.sys.FileIo;
import io.vblk.virtio.vhost.wire.VhostUserCodec.VringAddr;

import java.util.ArrayList;
import java.util.List;
import java.util.function.IntConsumer;

/**
 * Home thread: the session's control context. No locking.
 *
 * <p>One vring as the front-end negotiated it (vhost-user.rst "Ring states"): its size, addresses
 * and base, the three eventfds, whether it is <em>started</em> (SET_VRING_KICK since the last
 * GET_VRING_BASE) and <em>enabled</em> (SET_VRING_ENABLE), and where the device queue behind it is
 * in its run / stop cycle. The eventfds here are the session's; a running device queue holds
 * its own duplicates.
 */
final class VringState {
    /** Where the device queue is: not running, running, or asked to stop and finishing its in-flight requests. */
    enum Run { IDLE, RUNNING, STOPPING }

    final int index;
    /** SET_VRING_NUM; 0 until set. */
    int size;
    /** SET_VRING_ADDR (front-end addresses); null until set. */
    VringAddr addr;
    /** Next avail index to process: from SET_VRING_BASE, then from each stop. */
    int base;
    int kickFd = -1;
    int callFd = -1;
    int errFd = -1;
    /** SET_VRING_KICK seen since the last stop ("started"); with VRING_NOFD, kickFd stays -1. */
    boolean kicked;
    /** SET_VRING_ENABLE 1 seen (without VHOST_USER_F_PROTOCOL_FEATURES a ring is enabled from the start). */
    boolean enabled;
    Run run = Run.IDLE;
    /** Told, with the next avail index, once a stop asked for finishes. */
    final List<IntConsumer> stopWaiters = new ArrayList<>(2);

    VringState(int index) {
        this.index = index;
    }

    /** Fully described: a size and addresses (memory is the session's to check). */
    boolean described() {
        return size != 0 && addr != null;
    }

    /** Replaces the kick fd (closing the old one) and marks the ring started. */
    void setKick(int fd) {
        kickFd = closeFd(kickFd);
        kickFd = fd;
        kicked = true;
    }

    void setCall(int fd) {
        callFd = closeFd(callFd);
        callFd = fd;
    }

    void setErr(int fd) {
        errFd = closeFd(errFd);
        errFd = fd;
    }

    /** GET_VRING_BASE: "stop ring upon receiving VHOST_USER_GET_VRING_BASE"; a new SET_VRING_KICK starts it again. */
    void stopped() {
        kicked = false;
        kickFd = closeFd(kickFd);
        callFd = closeFd(callFd);
    }

    /** Closes the eventfds. */
    void closeFds() {
        kickFd = closeFd(kickFd);
        callFd = closeFd(callFd);
        errFd = closeFd(errFd);
    }

    /** Back to the state of a new session (device reset): nothing described, no fds. */
    void reset() {
        closeFds();
        size = 0;
        addr = null;
        base = 0;
        kicked = false;
        enabled = false;
    }

    static int closeFd(int fd) {
        if (fd >= 0) {
            FileIo.close(fd);
        }
        return -1;
    }
}
