package io.vblk.tools.qmp;

import io.vblk.virtio.vhost.QemuStorageDaemon;

import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Any thread (test code).
 *
 * <p>The shared set-up of the tests that run one QMP session against qemu-storage-daemon, the
 * reference server, and against vblk: a directory for each (with the same sparse images), and the
 * reference server started with a monitor on {@code qmp.sock} in its directory.
 */
final class ReferenceServer {
    private ReferenceServer() {
    }

    /**
     * Checks qemu-storage-daemon is there, then makes {@code dir/qsd} and {@code dir/vblk}, each
     * holding the sparse files {@code names} of {@code size} bytes.
     *
     * @return the reference server's directory, then vblk's
     */
    static List<Path> directories(Path dir, long size, String... names) throws Exception {
        QemuStorageDaemon.ensureInstalled();
        List<Path> dirs = List.of(Files.createDirectory(dir.resolve("qsd")), Files.createDirectory(dir.resolve("vblk")));
        for (Path d : dirs) {
            for (String n : names) {
                try (RandomAccessFile f = new RandomAccessFile(d.resolve(n).toFile(), "rw")) {
                    f.setLength(size);
                }
            }
        }
        return dirs;
    }

    /** qemu-storage-daemon in {@code qd} with {@code args} and a QMP monitor on {@code qd/qmp.sock}. */
    static QemuStorageDaemon start(Path qd, String... args) throws Exception {
        List<String> all = new ArrayList<>(List.of(args));
        all.addAll(List.of("--chardev", "socket,id=m0,path=" + qd.resolve("qmp.sock") + ",server=on,wait=off",
                "--monitor", "chardev=m0"));
        return QemuStorageDaemon.start(qd, all.toArray(String[]::new));
    }
}
