package io.vblk.tools.bench;

import io.vblk.guest.GuestTransport;
import io.vblk.guest.vhost.VhostUserTransport;

import java.time.Duration;
import java.util.List;

/**
 * Any thread that is no context's home thread (the bench's main thread).
 *
 * <p>A vhost-user-blk back-end behind a UNIX socket (vblk's own {@code serve}, qemu-storage-daemon):
 * the bench's guest speaks to it through the vhost-user front-end. The back-end's threads are in
 * another process, so CPU time counts the guest and the front-end's control thread only, and
 * io_submit calls are not visible.
 */
final class VhostUserTarget implements BenchTarget {
    private final String path;
    private final VhostUserTransport transport;

    private VhostUserTarget(String path, VhostUserTransport transport) {
        this.path = path;
        this.transport = transport;
    }

    static VhostUserTarget connect(String path, Duration timeout) {
        return new VhostUserTarget(path, VhostUserTransport.connect(path, timeout));
    }

    @Override
    public String describe() {
        return "vhost-user:" + path;
    }

    @Override
    public GuestTransport transport() {
        return transport;
    }

    @Override
    public List<Thread> ioThreads() {
        return List.of();
    }

    @Override
    public Thread controlThread() {
        return transport.control().homeThread();
    }

    @Override
    public long ioSubmitCalls() {
        return -1;
    }

    @Override
    public void close() {
        transport.close();
    }
}
