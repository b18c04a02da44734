/**
 * The system-call facade (x86_64 Linux): one small class per syscall family —
 * {@link io.vblk.aio.sys.FileIo} (files, block devices, read/write), {@link io.vblk.aio.sys.EventFds},
 * {@link io.vblk.aio.sys.Mmap} (memfd, mmap), {@link io.vblk.aio.sys.AioCalls} (Linux native AIO) and
 * {@link io.vblk.aio.sys.UnixSockets} (AF_UNIX, SCM_RIGHTS, poll) — with the binary layouts they pass
 * ({@code *Layout}) and {@link io.vblk.aio.sys.Errno}.
 *
 * <p>Every call returns its result or {@code -errno}: failures, EAGAIN included, are values, never
 * exceptions (STYLE rule 10), and calls interrupted by a signal (EINTR) are retried inside, so callers
 * never see -EINTR. Two bindings, chosen by cost: calls made per request or per wake-up (eventfd
 * read/write, {@code io_submit}, {@code io_getevents}, {@code pread[v]}/{@code pwrite[v]},
 * {@code read}/{@code write}, {@code recvmsg}/{@code sendmsg}, {@code accept4}, {@code poll}) are FFM
 * downcalls ({@code Downcalls}) using a per-thread {@code Scratch} area for errno and small
 * structures, so they allocate nothing (they learn errno by repeating a failed call with errno
 * captured); set-up calls (open, mmap, io_setup, sockets, ...) go through JNA direct mapping
 * ({@code LibC}). The constants and syscall numbers are x86_64 Linux values.
 */
package io.vblk.aio.sys;
