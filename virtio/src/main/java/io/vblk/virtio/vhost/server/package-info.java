/**
 * The back-end's protocol logic, one class per concern (after rust-vmm's vhost-user-backend):
 * {@link io.vblk.virtio.vhost.server.VhostUserSession} dispatches each message to the typed handler
 * of its request (features, memory, vrings, config, inflight, status), which applies it to a device
 * known only as a {@link io.vblk.virtio.device.VirtioDevice}; each queue's negotiated state is a
 * {@code VringState}. No socket here.
 */
package io.vblk.virtio.vhost.server;
