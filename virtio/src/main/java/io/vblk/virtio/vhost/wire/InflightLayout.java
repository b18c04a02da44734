package io.vblk.virtio.vhost.wire;

/**
 * Any thread: constants.
 *
 * <p>The shared inflight buffer of GET_INFLIGHT_FD / SET_INFLIGHT_FD (vhost-user.rst, "Inflight
 * I/O tracking"): one region per queue, each aligned to 64 bytes (libvhost-user's
 * INFLIGHT_ALIGNMENT, one cache line), native byte order; split virtqueues use the first layout,
 * packed virtqueues the second (which the back-end chooses by the negotiated VIRTIO_F_RING_PACKED:
 * QEMU sets the features before GET_INFLIGHT_FD).
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
 *
 * packed queue region (QueueRegionPacked), 32 + 32 * desc_num bytes, padded to a multiple of 64:
 *   0          8         10         12          14              16         18             20   21   22      32
 *   +----------+---------+----------+-----------+---------------+----------+--------------+----+----+-------+---------+
 *   | features | version | desc_num | free_head | old_free_head | used_idx | old_used_idx | uw | ouw | pad  | desc[]  |
 *   +----------+---------+----------+-----------+---------------+----------+--------------+----+----+-------+---------+
 *   uw / ouw: used_wrap_counter / old_used_wrap_counter (u8)
 *
 * desc[i] (DescStatePacked), 32 bytes:
 *   0          1     2      4      6     8          16   18      20     24       32
 *   +----------+-----+------+------+-----+----------+----+-------+------+--------+
 *   | inflight | pad | next | last | num | counter  | id | flags | len  |  addr  |
 *   +----------+-----+------+------+-----+----------+----+-------+------+--------+
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

    public static final int PACKED_HEADER_BYTES = 32;
    public static final int PACKED_DESC_BYTES = 32;

    public static final long P_FREE_HEAD = 12;
    public static final long P_OLD_FREE_HEAD = 14;
    public static final long P_USED_IDX = 16;
    public static final long P_OLD_USED_IDX = 18;
    public static final long P_USED_WRAP = 20;
    public static final long P_OLD_USED_WRAP = 21;
    public static final long P_DESC = 32;

    public static final long PD_INFLIGHT = 0;
    public static final long PD_NEXT = 2;
    public static final long PD_LAST = 4;
    public static final long PD_NUM = 6;
    public static final long PD_COUNTER = 8;
    public static final long PD_ID = 16;
    public static final long PD_FLAGS = 18;
    public static final long PD_LEN = 20;
    public static final long PD_ADDR = 24;

    /** Bytes of one split queue's region. */
    public static long queueRegionBytes(int queueSize) {
        return queueRegionBytes(queueSize, false);
    }

    /** Bytes of a buffer of split queue regions. */
    public static long bufferBytes(int numQueues, int queueSize) {
        return bufferBytes(numQueues, queueSize, false);
    }

    /** Bytes of one queue's region for a queue of {@code queueSize} entries, 64-byte aligned. */
    public static long queueRegionBytes(int queueSize, boolean packed) {
        long raw = packed ? PACKED_HEADER_BYTES + (long) PACKED_DESC_BYTES * queueSize
                : QUEUE_HEADER_BYTES + (long) DESC_BYTES * queueSize;
        return (raw + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
    }

    /** Bytes of the whole buffer. */
    public static long bufferBytes(int numQueues, int queueSize, boolean packed) {
        return queueRegionBytes(queueSize, packed) * numQueues;
    }

    /** Offset of entry {@code i} of a region in the given layout. */
    public static long desc(int i, boolean packed) {
        return packed ? P_DESC + (long) PACKED_DESC_BYTES * i : DESC + (long) DESC_BYTES * i;
    }
}
