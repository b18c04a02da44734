package io.vblk.drivers.nbd;

import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.BlockDriverConformance;
import io.vblk.drivers.TestImages;
import org.junit.jupiter.api.AfterEach;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The driver contract for vblk's NBD client, against a server that a subclass starts over a raw
 * image (a read-only open is a second, read-only server over the same image).
 */
abstract class NbdClientConformance extends BlockDriverConformance {
    protected final List<AutoCloseable> servers = new ArrayList<>();
    private String image;

    /** Starts a server for {@code image} listening on {@code socket}, exporting {@code "disk"}; returns what stops it. */
    protected abstract AutoCloseable startServer(Path dir, String socket, String image, boolean readOnly) throws Exception;

    @Override
    protected BlockDriver openDriver(Path dir, long size, boolean readOnly) throws Exception {
        if (image == null) {
            image = TestImages.create(dir, "img", size);
        }
        String socket = dir.resolve("s" + servers.size() + ".sock").toString();
        servers.add(startServer(dir, socket, image, readOnly));
        return io.vblk.drivers.spec.DriverSpec.open("nbd:server.type=unix,server.path=" + socket + ",export=disk");
    }

    @AfterEach
    void stopServers() throws Exception {
        // Runs before the base class's clean-up: the client disconnects first (nbdkit waits for its
        // clients before it stops); the base class's second close of each is a no-op.
        if (channel != null) {
            io.vblk.aio.linuxaio.LoopSteps.pollUntil(ctx, () -> channel.inFlight() == 0, "channel idle at the end");
            channel.close();
        }
        if (driver != null) {
            driver.close();
        }
        for (AutoCloseable s : servers) {
            s.close();
        }
    }
}
