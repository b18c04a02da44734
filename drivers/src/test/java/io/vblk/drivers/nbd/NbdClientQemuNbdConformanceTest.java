package io.vblk.drivers.nbd;

import org.junit.jupiter.api.Tag;

import java.nio.file.Path;

/** The NBD client's contract against qemu-nbd (Debian qemu-utils). */
@Tag("real")
class NbdClientQemuNbdConformanceTest extends NbdClientConformance {
    @Override
    protected AutoCloseable startServer(Path dir, String socket, String image, boolean readOnly) {
        return Daemons.qemuNbd(dir, socket, "disk", image, readOnly);
    }
}
