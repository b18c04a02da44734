package io.vblk.drivers;

import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.FileIo;

import java.nio.file.Path;

/** Test helper: zero-filled (sparse) image files. Any thread. */
public final class TestImages {
    private TestImages() {
    }

    /** Makes {@code dir/name} of {@code size} bytes unless it exists; returns its path. */
    public static String create(Path dir, String name, long size) {
        String path = dir.resolve(name).toString();
        int fd = FileIo.open(path, FileIo.O_RDWR | FileIo.O_CREAT | FileIo.O_CLOEXEC, 0600);
        if (fd < 0) {
            throw new IllegalStateException("create " + name + ": " + Errno.name(fd));
        }
        try {
            if (FileIo.fileSize(fd) != size && FileIo.ftruncate(fd, size) != 0) {
                throw new IllegalStateException("ftruncate " + name);
            }
        } finally {
            FileIo.close(fd);
        }
        return path;
    }
}
