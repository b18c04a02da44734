/**
 * vhost-user wire messages (QEMU docs/interop/vhost-user.rst): the byte layouts
 * ({@link io.vblk.virtio.vhost.wire.VhostUserMessageLayout}, {@link io.vblk.virtio.vhost.wire.InflightLayout}),
 * the payload codec, and the ONE table of request types
 * ({@link io.vblk.virtio.vhost.wire.VhostUserRequest}: payload sizes, {@link io.vblk.virtio.vhost.wire.PayloadRule},
 * {@link io.vblk.virtio.vhost.wire.FdRule}, reply shapes) that
 * {@link io.vblk.virtio.vhost.wire.VhostUserFramer} applies to every message read, on both sides.
 * No syscalls, no device.
 */
package io.vblk.virtio.vhost.wire;
