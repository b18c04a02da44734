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

 *   <li>The same classes are the one mock guest of every test: a harness that brings a device up
 *       itself makes queues with {@link io.vblk.guest.GuestBlkQueue#create}, frames odd but valid
 *       requests with {@code beginFramed}/{@code addBuffer}/{@code commitFramed}, and writes what
 *       a well-behaved driver never does (loops, addresses outside guest memory, bad indirect
 *       tables, indexes out of range, an avail index that jumps) with
 *       {@link io.vblk.guest.GuestVring}'s {@code forge*} calls. {@link io.vblk.guest.GuestRam}
 *       can be several regions with holes between them, or laid over memory someone else owns.</li>
 * </ul>
 *
 * <p>Posting, kicking, reaping and the workload loop allocate nothing per request. Nothing in
 * the server ({@code io.vblk.virtio}) imports this package.
 */
package io.vblk.guest;
