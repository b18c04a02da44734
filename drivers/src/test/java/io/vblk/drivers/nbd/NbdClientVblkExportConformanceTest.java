package io.vblk.drivers.nbd;

import io.vblk.drivers.spec.DriverSpec;

import java.nio.file.Path;

/** The NBD client's contract against vblk's own NBD export (over the file driver): both halves, one process. */
class NbdClientVblkExportConformanceTest extends NbdClientConformance {
    @Override
    protected AutoCloseable startServer(Path dir, String socket, String image, boolean readOnly) {
        return new NbdFixture(socket, DriverSpec.open("file:" + image), "disk", !readOnly);
    }
}
