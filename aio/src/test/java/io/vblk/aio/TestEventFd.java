package io.vblk.aio;

import io.netty.channel.epoll.Native;
import io.netty.channel.unix.FileDescriptor;

import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * An eventfd for loop tests, made with Netty's helpers so the loop's tests depend on nothing but
 * the loop.
 *
 * <p>Any thread.
 */
public final class TestEventFd implements AutoCloseable {
    private final FileDescriptor fd = Native.newEventFd();
    private final ByteBuffer buf = ByteBuffer.allocateDirect(8).order(java.nio.ByteOrder.nativeOrder());

    public int fd() {
        return fd.intValue();
    }

    public void signal() {
        Native.eventFdWrite(fd.intValue(), 1);
    }

    /** Reads and returns the counter (0 if none, the fd is non-blocking). */
    public long drain() {
        buf.clear();
        try {
            int n = fd.read(buf, 0, 8);
            return n == 8 ? buf.getLong(0) : 0;
        } catch (IOException e) {
            return 0; // EAGAIN: counter was zero
        }
    }

    @Override
    public void close() throws IOException {
        fd.close();
    }
}
