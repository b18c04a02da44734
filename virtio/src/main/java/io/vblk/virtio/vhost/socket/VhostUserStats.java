package io.vblk.virtio.vhost.socket;

import io.vblk.virtio.vhost.wire.VhostUserRequest;

/**
 * Home thread: the export's context writes. Getters: any thread, a racy snapshot (each long is
 * read whole on 64-bit JVMs).
 *
 * <p>Counters of one vhost-user export, across its connections: messages by request type and
 * protocol errors. Connections increment plain fields; metrics read them through the getters.
 */
public final class VhostUserStats {
    /** Messages handled, indexed by request number (the wire's 0..63). */
    final long[] messages = new long[64];
    long protocolErrors;

    /** Messages of type {@code r} handled. */
    public long messages(VhostUserRequest r) {
        return messages[r.id];
    }

    /** Malformed or out-of-order messages (each closed its connection). */
    public long protocolErrors() {
        return protocolErrors;
    }
}
