package io.vblk.drivers.rbd;

import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.BlockDriverConformance;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;

/**
 * Any thread (test code). The driver contract for {@code rbd} on a real single-node cluster
 * ({@link CephCluster}, started once for the class): each test gets its own image; its read-only
 * open ({@code rbd_open_read_only}) is of the same image.
 */
@Tag("real")
class RbdConformanceTest extends BlockDriverConformance {
    @TempDir
    static Path clusterDir;
    static CephCluster cluster;
    private static final Map<Path, String> IMAGES = new HashMap<>();

    @BeforeAll
    static void startCluster() throws Exception {
        cluster = CephCluster.start(clusterDir.resolve("ceph"));
    }

    @AfterAll
    static void stopCluster() throws Exception {
        if (cluster != null) {
            cluster.close();
        }
    }

    @Override
    protected BlockDriver openDriver(Path dir, long size, boolean readOnly) throws Exception {
        String image = IMAGES.get(dir);
        if (image == null) {
            image = "conf" + IMAGES.size();
            cluster.rbd("create", "--size", (size >> 10) + "K", CephCluster.POOL + "/" + image);
            IMAGES.put(dir, image);
        }
        return RbdDriver.open(new RbdDriver.Options(CephCluster.POOL, image, null, null, cluster.conf().toString(), null,
                null, readOnly));
    }
}
