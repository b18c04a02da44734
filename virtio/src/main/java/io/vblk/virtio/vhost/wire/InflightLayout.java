package io.vblk.virtio.vhost.wire;

/**
 * Any thread: constants.
 *
 * <p>The shared inflight buffer of GET_INFLIGHT_FD / SET_INFLIGHT_FD for split virtqueues
 * (vhost-user.rst, "Inflight I/O tracking"): one region per queue, each aligned to 64 bytes
 * (libvhost-user's INFLIGHT_ALIGNMENT, one cache line), native byte order.
 *
 * <pre>
 * buffer:  | queue 0 region | queue 1 region | ... | queue N-1 region |
 *
 * queue region (QueueRegionSplit), 16 + 16 * desc_num bytes, padded to a multiple of 64:
 *   0                8         10         12                14         16
 *   +----------------+----------+----------+-----------------+----------+------------------+
 *   |    features    | version  | desc_num | last_batch_head | used_idx | desc[desc_num]   |
 *   +----------------+----------+----------+-----------------+----------+------------------+
 *   version: 1 once a back-end tracks in it; 0 = "uninitialized buffer"
 *
 * desc[i] (DescStateSplit), 16 bytes:
 *   0          1                    6        8                  16
 *   +----------+--------------------+--------+------------------+
 *   | inflight |  padding (5 bytes) |  next  |     counter      |
 *   +----------+--------------------+--------+------------------+
 * </pre>
 */
public final class InflightLayout {
    private InflightLayout() {
    }

    public static final int ALIGNMENT = 64;
    public static final int QUEUE_HEADER_BYTES = 16;
    public static final int DESC_BYTES = 16;

    public static final long FEATURES = 0;
    public static final long VERSION = 8;
    public static final long DESC_NUM = 10;
    public static final long LAST_BATCH_HEAD = 12;
    public static final long USED_IDX = 14;
    public static final long DESC = 16;

    public static final long DESC_INFLIGHT = 0;
    public static final long DESC_NEXT = 6;
    public static final long DESC_COUNTER = 8;

    /** Bytes of one queue's region for a queue of {@code queueSize} entries, 64-byte aligned. */
    public static long queueRegionBytes(int queueSize) {
        long raw = QUEUE_HEADER_BYTES + (long) DESC_BYTES * queueSize;
        return (raw + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
    }

    /** Bytes of the whole buffer. */
    public static long bufferBytes(int numQueues, int queueSize) {
        return queueRegionBytes(queueSize) * numQueues;
    }
}
