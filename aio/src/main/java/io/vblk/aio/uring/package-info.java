/**
 * The io_uring engine's machinery, over raw system calls made as FFM downcalls
 * ({@code UringSyscalls}: io_uring_setup, io_uring_enter, io_uring_register).
 *
 * <ul>
 *   <li>{@link io.vblk.aio.uring.IoUring}: one ring of one AioContext: prepare requests (READV,
 *       WRITEV, FSYNC, FALLOCATE, NOP), submit them in one io_uring_enter, reap completions from the
 *       CQ ring in user space; wake-up by eventfd or ring fd; QEMU's resubmission of short reads
 *       and -EAGAIN completions. Its class comment shows how an engine seam drives it.</li>
 *   <li>{@link io.vblk.aio.uring.UringBackend}: the engine ({@code aio=io_uring}): an
 *       {@link io.vblk.aio.engine.EngineBackend} over one {@code IoUring} per context, behind the
 *       one {@link io.vblk.aio.engine.SubmissionQueue}.</li>
 *   <li>{@code UringQueues} (the mmapped SQ, CQ and SQE areas),
 *       {@code UringSlots} (the slot table behind {@code user_data}),
 *       {@code UringFiles} (registered files),
 *       {@link io.vblk.aio.uring.UringBuffers} (registered buffers; READ/WRITE_FIXED, READV/WRITEV_FIXED),
 *       {@link io.vblk.aio.uring.UringCounters}.</li>
 *   <li>The kernel's structures, each with its byte diagram: {@link io.vblk.aio.uring.UringParamsLayout},
 *       {@link io.vblk.aio.uring.RingOffsetsLayout}, {@link io.vblk.aio.uring.SqeLayout},
 *       {@link io.vblk.aio.uring.CqeLayout}.</li>
 * </ul>
 *
 * <p>Why raw system calls rather than Netty's io_uring transport: vblk's loops run Netty's epoll
 * handler, so a Netty io_uring loop would be another thread and every batch would cross threads
 * twice; tools' {@code UringBenchmark} measures both (CPU time per request).
 */
package io.vblk.aio.uring;
