package io.vblk.drivers.rbd;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

/**
 * Any thread (test code). The shared fixture of the tests on a real cluster: one single-node
 * {@link CephCluster} per test class, started in the class's temporary directory {@link #dir}
 * before its tests and stopped after them. A subclass's own {@code @BeforeAll} runs after the
 * cluster is up.
 */
public abstract class CephClusterFixture {
    @TempDir
    protected static Path dir;
    protected static CephCluster cluster;

    @BeforeAll
    static void startCluster() throws Exception {
        cluster = CephCluster.start(dir.resolve("ceph"));
    }

    @AfterAll
    static void stopCluster() throws Exception {
        if (cluster != null) {
            cluster.close();
            cluster = null;
        }
    }
}
