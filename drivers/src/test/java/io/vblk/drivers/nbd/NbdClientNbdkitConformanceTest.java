package io.vblk.drivers.nbd;

import org.junit.jupiter.api.Tag;

import java.nio.file.Path;

/** The NBD client's contract against nbdkit's file plugin (Debian nbdkit). */
@Tag("real")
class NbdClientNbdkitConformanceTest extends NbdClientConformance {
    @Override
    protected AutoCloseable startServer(Path dir, String socket, String image, boolean readOnly) {
        return Daemons.nbdkit(socket, readOnly, "-e", "disk", "file", image);
    }
}
