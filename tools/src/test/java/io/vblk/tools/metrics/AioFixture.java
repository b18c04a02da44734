package io.vblk.tools.metrics;

import io.vblk.aio.DeferCall;
import io.vblk.aio.engine.IoRequest;
import io.vblk.aio.engine.SubmissionQueue;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.Sys;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;

/**
 * Real Linux AIO requests on a temp file for the metrics tests: a file, aligned buffers with
 * one-entry iovecs, and batches submitted in one defer-call section.
 *
 * <p>Home thread: the engine's context.
 */
final class AioFixture implements AutoCloseable {
    static final int BLOCK = 4096;

    final Arena arena = Arena.ofShared();
    final int fd;
    int completed;
    long lastResult;
    final IoRequest.Completion done = (req, res) -> {
        completed++;
        lastResult = res;
    };

    AioFixture(Path file, boolean direct, long size) {
        int flags = Sys.O_RDWR | Sys.O_CREAT | Sys.O_CLOEXEC | (direct ? Sys.O_DIRECT : 0);
        fd = Sys.open(file.toString(), flags, 0600);
        if (fd < 0) {
            throw new IllegalStateException("open " + file + ": " + Errno.name(fd));
        }
        if (Sys.ftruncate(fd, size) != 0) {
            throw new IllegalStateException("ftruncate failed");
        }
    }

    /** A BLOCK-sized aligned buffer and its one-entry iovec; returns the iovec's address. */
    long iov() {
        MemorySegment data = arena.allocate(BLOCK, BLOCK);
        MemorySegment iov = arena.allocate(16, 8);
        iov.set(ValueLayout.JAVA_LONG, 0, data.address());
        iov.set(ValueLayout.JAVA_LONG, 8, BLOCK);
        return iov.address();
    }

    /** n writes of one block each at offsets 0, BLOCK, ... in one section: one io_submit. */
    IoRequest[] writeBatch(SubmissionQueue aio, int n) {
        IoRequest[] rs = new IoRequest[n];
        DeferCall dc = aio.context().deferCall();
        dc.begin();
        try {
            for (int i = 0; i < n; i++) {
                rs[i] = new IoRequest().writev(fd, iov(), 1, (long) i * BLOCK, done);
                aio.submit(rs[i], 0);
            }
        } finally {
            dc.end();
        }
        return rs;
    }

    @Override
    public void close() {
        Sys.close(fd);
        arena.close();
    }
}
