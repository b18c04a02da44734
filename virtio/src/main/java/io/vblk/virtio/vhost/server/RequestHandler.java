package io.vblk.virtio.vhost.server;

import io.vblk.virtio.vhost.wire.VhostUserMessage;
import io.vblk.virtio.vhost.wire.VhostUserProtocolException;

/**
 * Home thread: the session's control context.
 *
 * <p>Handles one request type (the typed handler of rust-vmm's vhost-user-backend, one method per
 * request): {@link VhostUserSession} dispatches each message to the handler registered for its
 * type. The message has passed the framer's table (size, fds); the handler checks meaning.
 */
@FunctionalInterface
interface RequestHandler {
    /**
     * Returns true when the message is finished (any reply sent), false when it is pending (its
     * reply follows once the device queues it waits for have stopped). Fds the handler does not
     * {@link MessageFds#take} are closed after it returns.
     */
    boolean handle(VhostUserMessage m, MessageFds fds) throws VhostUserProtocolException;
}
