package io.vblk.guest;

/**
 * Any thread: constants and pure functions.
 *
 * <p>Feature bits the guest driver knows: the transport-independent ones (virtio 1.x section 6)
 * and the block device's (5.2.3), with names for logs and reports.
 */
public final class GuestFeatures {
    private GuestFeatures() {
    }

    // -- block device, 5.2.3 --
    public static final int BLK_F_SIZE_MAX = 1;
    public static final int BLK_F_SEG_MAX = 2;
    public static final int BLK_F_GEOMETRY = 4;
    public static final int BLK_F_RO = 5;
    public static final int BLK_F_BLK_SIZE = 6;
    public static final int BLK_F_FLUSH = 9;
    public static final int BLK_F_TOPOLOGY = 10;
    public static final int BLK_F_CONFIG_WCE = 11;
    public static final int BLK_F_MQ = 12;
    public static final int BLK_F_DISCARD = 13;
    public static final int BLK_F_WRITE_ZEROES = 14;
    public static final int BLK_F_LIFETIME = 15;

    // -- reserved / transport, 6 --
    public static final int F_INDIRECT_DESC = 28;
    public static final int F_EVENT_IDX = 29;
    public static final int F_VERSION_1 = 32;
    public static final int F_ACCESS_PLATFORM = 33;
    public static final int F_RING_PACKED = 34;
    public static final int F_IN_ORDER = 35;

    /**
     * What this driver can use when offered: every block feature it implements, indirect
     * descriptors, event index and VERSION_1. Not RING_PACKED: the driver can drive a packed ring
     * ({@link GuestPackedVring}) but takes it only when asked ({@link #WITH_PACKED}); not IN_ORDER
     * (the driver frees chains by id), not ACCESS_PLATFORM (no IOMMU here).
     */
    public static final long SUPPORTED = bits(BLK_F_SIZE_MAX, BLK_F_SEG_MAX, BLK_F_GEOMETRY, BLK_F_RO,
            BLK_F_BLK_SIZE, BLK_F_FLUSH, BLK_F_TOPOLOGY, BLK_F_CONFIG_WCE, BLK_F_MQ, BLK_F_DISCARD,
            BLK_F_WRITE_ZEROES, F_INDIRECT_DESC, F_EVENT_IDX, F_VERSION_1);

    /** {@link #SUPPORTED} plus RING_PACKED: a guest that runs its queues on packed rings. */
    public static final long WITH_PACKED = SUPPORTED | (1L << F_RING_PACKED);

    public static long bit(int feature) {
        return 1L << feature;
    }

    public static long bits(int... features) {
        long v = 0;
        for (int f : features) {
            v |= 1L << f;
        }
        return v;
    }

    public static boolean has(long features, int feature) {
        return (features & (1L << feature)) != 0;
    }

    public static String name(int feature) {
        return switch (feature) {
            case BLK_F_SIZE_MAX -> "SIZE_MAX";
            case BLK_F_SEG_MAX -> "SEG_MAX";
            case BLK_F_GEOMETRY -> "GEOMETRY";
            case BLK_F_RO -> "RO";
            case BLK_F_BLK_SIZE -> "BLK_SIZE";
            case BLK_F_FLUSH -> "FLUSH";
            case BLK_F_TOPOLOGY -> "TOPOLOGY";
            case BLK_F_CONFIG_WCE -> "CONFIG_WCE";
            case BLK_F_MQ -> "MQ";
            case BLK_F_DISCARD -> "DISCARD";
            case BLK_F_WRITE_ZEROES -> "WRITE_ZEROES";
            case BLK_F_LIFETIME -> "LIFETIME";
            case F_INDIRECT_DESC -> "INDIRECT_DESC";
            case F_EVENT_IDX -> "EVENT_IDX";
            case F_VERSION_1 -> "VERSION_1";
            case F_ACCESS_PLATFORM -> "ACCESS_PLATFORM";
            case F_RING_PACKED -> "RING_PACKED";
            case F_IN_ORDER -> "IN_ORDER";
            default -> "bit" + feature;
        };
    }

    /** "VERSION_1|EVENT_IDX|..." for a feature word, lowest bit first. */
    public static String describe(long features) {
        StringBuilder sb = new StringBuilder();
        for (int b = 0; b < 64; b++) {
            if ((features & (1L << b)) != 0) {
                if (!sb.isEmpty()) {
                    sb.append('|');
                }
                sb.append(name(b));
            }
        }
        return sb.isEmpty() ? "none" : sb.toString();
    }
}
