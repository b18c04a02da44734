package io.vblk.virtio.vhost.wire;

/**
 * Any thread: immutable.
 *
 * <p>A message broke the vhost-user protocol (bad size, unknown request, missing fds, out-of-range
 * queue index, overlapping regions, ...). The message says what, in one line; the connection that
 * received it is closed with that line in the log.
 */
public final class VhostUserProtocolException extends Exception {
    public VhostUserProtocolException(String message) {
        super(message, null, false, false);
    }
}
