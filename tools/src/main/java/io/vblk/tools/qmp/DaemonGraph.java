package io.vblk.tools.qmp;

import io.vblk.aio.IoThread;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.node.BlockNode;
import io.vblk.tools.metrics.VblkMetrics;
import io.vblk.virtio.blk.BlkDevice;
import io.vblk.virtio.blk.BlockEvents;
import io.vblk.virtio.vhost.socket.VhostUserExport;

import java.util.List;
import java.util.Map;

/**
 * Home thread: the main loop (every collection is the daemon's own, live, touched only there once
 * the daemon has started).
 *
 * <p>The graph {@code vblk serve} built from its command line, which the monitor changes at run
 * time: IoThreads, drivers and nodes by name, the exports with their devices (parallel lists), and
 * what query commands report about each (how a node was opened, an export's node and IoThreads).
 *
 * @param metrics the metrics registry new exports and IoThreads are bound to, or null
 * @param nbd     the NBD server and its exports
 * @param secrets the secret objects ({@code --object secret}, QMP {@code object-add qom-type=secret})
 */
public record DaemonGraph(IoThread mainLoop, Map<String, IoThread> iothreads, Map<String, BlockDriver> drivers,
                          Map<String, BlockNode> nodes, List<BlkDevice> devices, List<VhostUserExport> exports,
                          VblkMetrics metrics, Map<String, NodeInfo> nodeInfo, Map<String, String> exportNodes,
                          Map<String, List<String>> exportThreads, BlockEvents events,
                          io.vblk.drivers.nbd.server.NbdService nbd, Secrets secrets) {

    /** What a node was opened from, for query-named-block-nodes (QEMU's BlockDeviceInfo). */
    public record NodeInfo(String drv, String filename, boolean direct, boolean readOnly) {
    }
}
