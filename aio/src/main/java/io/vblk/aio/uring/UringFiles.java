package io.vblk.aio.uring;

import io.vblk.aio.sys.Errno;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Home thread: the owning IoThread (of its {@link IoUring}). No locking.
 *
 * <p>The files registered with one ring (IORING_REGISTER_FILES, io_uring_register(2)) and the map
 * from fd number to registered index that lets callers keep passing fd numbers: a plain int array
 * indexed by fd, looked up once per SQE.
 */
final class UringFiles {
    /** fd number to registered index + 1 (0: not registered); empty when none are registered. */
    private int[] index = new int[0];

    /** The registered index of {@code fd}, or -1. */
    int indexOf(int fd) {
        return fd >= 0 && fd < index.length ? index[fd] - 1 : -1;
    }

    int register(int ringFd, int[] fds) {
        if (index.length > 0) {
            return -Errno.EBUSY;
        }
        if (fds.length == 0) {
            return -Errno.EINVAL;
        }
        int max = 0;
        for (int fd : fds) {
            if (fd < 0) {
                return -Errno.EBADF;
            }
            max = Math.max(max, fd);
        }
        int r;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment arr = a.allocate(4L * fds.length, 4); // __s32 fds[nr_args]
            for (int i = 0; i < fds.length; i++) {
                arr.set(ValueLayout.JAVA_INT, 4L * i, fds[i]);
            }
            r = UringSyscalls.register(ringFd, UringSyscalls.IORING_REGISTER_FILES, arr.address(), fds.length);
        }
        if (r < 0) {
            return r;
        }
        int[] map = new int[max + 1];
        for (int i = 0; i < fds.length; i++) {
            map[fds[i]] = i + 1;
        }
        index = map;
        return 0;
    }

    int unregister(int ringFd) {
        if (index.length == 0) {
            return 0;
        }
        int r = UringSyscalls.register(ringFd, UringSyscalls.IORING_UNREGISTER_FILES, 0, 0);
        if (r == 0) {
            index = new int[0];
        }
        return r;
    }
}
