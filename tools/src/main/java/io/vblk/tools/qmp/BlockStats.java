package io.vblk.tools.qmp;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.vblk.drivers.node.BlockNode;
import io.vblk.virtio.blk.BlkDevice;
import io.vblk.virtio.blk.BlkQueueStats;

import java.util.List;

/**
 * Any thread: immutable (a snapshot of counters read from the queues' stats, which any thread may read).
 *
 * <p>One node's I/O counters for query-blockstats (QEMU's {@code BlockDeviceStats}), summed over
 * the queues of every device attached to it: the counters the metrics endpoint exports.
 */
record BlockStats(long reads, long writes, long flushes, long discards, long readBytes, long writtenBytes,
                  long failedRw) {

    static BlockStats of(BlockNode node, List<BlkDevice> devices) {
        long r = 0, w = 0, f = 0, d = 0, rb = 0, wb = 0, e = 0;
        for (BlkDevice dev : devices) {
            if (dev.node() != node) {
                continue;
            }
            for (int q = 0; q < dev.numQueues(); q++) {
                BlkQueueStats s = dev.queueStats(q);
                r += s.reads();
                w += s.writes();
                f += s.flushes();
                d += s.discards();
                rb += s.readBytes();
                wb += s.writtenBytes();
                e += s.ioErrors();
            }
        }
        return new BlockStats(r, w, f, d, rb, wb, e);
    }

    ObjectNode toJson() {
        ObjectNode o = Qmp.JSON.createObjectNode();
        o.put("unmap_operations", discards);
        o.put("unmap_merged", 0);
        o.put("flush_total_time_ns", 0);
        o.put("wr_highest_offset", 0);
        o.put("wr_total_time_ns", 0);
        o.put("failed_wr_operations", 0);
        o.put("failed_rd_operations", failedRw);
        o.put("wr_merged", 0);
        o.put("wr_bytes", writtenBytes);
        o.putArray("timed_stats");
        o.put("failed_unmap_operations", 0);
        o.put("failed_flush_operations", 0);
        o.put("account_invalid", false);
        o.put("rd_total_time_ns", 0);
        o.put("invalid_unmap_operations", 0);
        o.put("flush_operations", flushes);
        o.put("wr_operations", writes);
        o.put("unmap_bytes", 0);
        o.put("rd_merged", 0);
        o.put("rd_bytes", readBytes);
        o.put("unmap_total_time_ns", 0);
        o.put("invalid_flush_operations", 0);
        o.put("account_failed", false);
        o.put("rd_operations", reads);
        o.put("invalid_wr_operations", 0);
        o.put("invalid_rd_operations", 0);
        return o;
    }
}
