package io.vblk.virtio.vhost.server;

import io.vblk.aio.sys.FileIo;
import io.vblk.virtio.vhost.wire.VhostUserMessage;

/**
 * Home thread: the session's control context. No locking.
 *
 * <p>The fds of one message while it is handled: each is taken (ownership moves on, to a mapping or
 * a vring) or closed once the handler returns, also when it throws.
 */
final class MessageFds {
    private final int[] fds;
    private final boolean[] taken;

    MessageFds(VhostUserMessage m) {
        this.fds = m.fds();
        this.taken = new boolean[fds.length];
    }

    int count() {
        return fds.length;
    }

    /** Takes fd {@code i}; the caller owns it from now on. */
    int take(int i) {
        taken[i] = true;
        return fds[i];
    }

    void closeUntaken() {
        for (int i = 0; i < fds.length; i++) {
            if (!taken[i]) {
                FileIo.close(fds[i]);
            }
        }
    }
}
