/**
 * The emulated guest: a virtio-blk driver written from the virtio 1.x spec that plays the guest
 * side of a device, so the whole request path runs, is measured and is tested without a VM.
 *
 * <ul>
 *   <li>{@link io.vblk.guest.GuestTransport} is the seam to a device: in process
 *       ({@link io.vblk.guest.InProcessTransport}, assembled with the device, its IoThreads
 *       and a driver by {@link io.vblk.guest.InProcessBlk}) or over a vhost-user socket
 *       (the vhost-user front-end's transport).</li>
 *   <li>{@link io.vblk.guest.GuestBlkDriver} negotiates features, reads the configuration,
 *       lays out split rings ({@link io.vblk.guest.GuestVring}, bytes per
 *       {@link io.vblk.guest.VringLayout}) in memfd-backed guest RAM
 *       ({@link io.vblk.guest.GuestRam}) and starts one
 *       {@link io.vblk.guest.GuestBlkQueue} per queue, whose preallocated
 *       {@link io.vblk.guest.BlkSlot}s carry requests (bytes per
 *       {@link io.vblk.guest.BlkWireLayout}).</li>
 *   <li>{@link io.vblk.guest.WorkloadRun} runs a {@link io.vblk.guest.Workload}
 *       (fio-style patterns, block size, queue depth, duration or count, verify mode) with one
 *       vCPU thread per queue and returns {@link io.vblk.guest.QueueStats} with a
 *       {@link io.vblk.guest.LatencyHistogram}.</li>
 * </ul>
 *
 * <p>Posting, kicking, reaping and the workload loop allocate nothing per request.
 */
package io.vblk.guest;
