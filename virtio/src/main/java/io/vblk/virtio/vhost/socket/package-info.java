/**
 * vhost-user sockets: {@link io.vblk.virtio.vhost.socket.VhostUserSocket}, the frame reader/writer
 * (recvmsg/sendmsg with SCM_RIGHTS around the framer) shared by vblk's server and the guest-side
 * front-end; and the server's listening export and per-front-end connection, which hand whole
 * messages to a {@link io.vblk.virtio.vhost.server.VhostUserSession}.
 */
package io.vblk.virtio.vhost.socket;
