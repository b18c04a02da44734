/**
 * The guest side of vhost-user: a front-end (the role QEMU plays for a VM) that speaks to any
 * vhost-user-blk back-end through the shared frame reader/writer of
 * {@link io.vblk.virtio.vhost.socket}, and the {@link io.vblk.guest.GuestTransport} that lets the
 * mock guest and {@code vblk bench} drive it. Nothing under {@code io.vblk.virtio} imports this package.
 */
package io.vblk.guest.vhost;
