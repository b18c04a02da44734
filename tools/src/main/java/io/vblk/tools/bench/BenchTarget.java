package io.vblk.tools.bench;

import io.vblk.guest.GuestTransport;

import java.util.List;

/**
 * Any thread that is no context's home thread (the bench's main thread).
 *
 * <p>Where the device that {@code vblk bench} drives lives: in this process (the device, its driver
 * and IoThreads built here) or, through the vhost-user frontend, behind a UNIX socket. The bench
 * only needs a {@link GuestTransport} to the device and, where it can see them, the threads that
 * serve it (for CPU accounting) and the AIO engine's io_submit count.
 */
public interface BenchTarget extends AutoCloseable {
    /** "in-process", "vhost-user:PATH". */
    String describe();

    GuestTransport transport();

    /** The threads serving the device's queues (IoThreads), empty when they are in another process. */
    List<Thread> ioThreads();

    /** The device's control thread (main loop), or null when it is in another process. */
    Thread controlThread();

    /** io_submit calls made so far by the engines serving the device, -1 when none is used or visible. */
    long ioSubmitCalls();

    @Override
    void close();

    /** The target's meters at this moment, by Prometheus name; empty when it runs elsewhere. */
    default java.util.Map<String, Number> meterSnapshot() {
        return java.util.Map.of();
    }
}
