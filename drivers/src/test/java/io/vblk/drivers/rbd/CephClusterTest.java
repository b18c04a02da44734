package io.vblk.drivers.rbd;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Any thread (test code). The fixture itself: a real single-node cluster comes up, takes an image
 * with {@code rbd create} and reports it with {@code rbd info}.
 */
@Tag("real")
@Timeout(300)
class CephClusterTest extends CephClusterFixture {
    @Test
    void createsAnImageAndReportsIt() throws Exception {
        cluster.rbd("create", "--size", "64M", CephCluster.POOL + "/img1");
        String info = cluster.rbd("info", "--format", "json", CephCluster.POOL + "/img1");
        assertThat(info).contains("\"name\":\"img1\"").contains("\"size\":67108864");
        assertThat(cluster.rbd("ls", CephCluster.POOL)).contains("img1");
        assertThat(cluster.ceph("health")).startsWith("HEALTH_OK");
        assertThat(cluster.adminKey()).matches("[A-Za-z0-9+/=]{40}");
    }
}
