package io.vblk.virtio.vhost.wire;

/**
 * Any thread: constants.
 *
 * <p>Protocol feature bits (vhost-user.rst, "Protocol features") and the vhost-user-only bit of the
 * virtio feature word.
 */
public final class VhostUserProtocolFeature {
    private VhostUserProtocolFeature() {
    }

    /**
     * {@code VHOST_USER_F_PROTOCOL_FEATURES}: bit 30 of GET/SET_FEATURES, the reserved (UNUSED)
     * virtio bit reused to say "GET/SET_PROTOCOL_FEATURES are supported".
     */
    public static final int F_PROTOCOL_FEATURES = 30;

    /**
     * {@code VHOST_F_LOG_ALL}: bit 26 of GET/SET_FEATURES (linux/vhost.h), "log all write
     * descriptors": set by the front-end while it migrates the guest; the back-end then marks
     * every guest page it writes in the log given with SET_LOG_BASE.
     */
    public static final int F_LOG_ALL = 26;

    public static final int MQ = 0;
    public static final int LOG_SHMFD = 1;
    public static final int RARP = 2;
    public static final int REPLY_ACK = 3;
    public static final int MTU = 4;
    public static final int BACKEND_REQ = 5;
    public static final int CROSS_ENDIAN = 6;
    public static final int CRYPTO_SESSION = 7;
    public static final int PAGEFAULT = 8;
    public static final int CONFIG = 9;
    public static final int BACKEND_SEND_FD = 10;
    public static final int HOST_NOTIFIER = 11;
    public static final int INFLIGHT_SHMFD = 12;
    public static final int RESET_DEVICE = 13;
    public static final int INBAND_NOTIFICATIONS = 14;
    public static final int CONFIGURE_MEM_SLOTS = 15;
    public static final int STATUS = 16;

    public static long bit(int feature) {
        return 1L << feature;
    }

    public static boolean has(long features, int feature) {
        return (features & bit(feature)) != 0;
    }

    /** Bit names of {@code features}, e.g. "MQ|REPLY_ACK|bit 20", for log lines. */
    public static String describe(long features) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < 64; i++) {
            if ((features & (1L << i)) == 0) {
                continue;
            }
            if (!b.isEmpty()) {
                b.append('|');
            }
            b.append(name(i));
        }
        return b.isEmpty() ? "none" : b.toString();
    }

    private static String name(int bit) {
        return switch (bit) {
            case MQ -> "MQ";
            case LOG_SHMFD -> "LOG_SHMFD";
            case RARP -> "RARP";
            case REPLY_ACK -> "REPLY_ACK";
            case MTU -> "MTU";
            case BACKEND_REQ -> "BACKEND_REQ";
            case CROSS_ENDIAN -> "CROSS_ENDIAN";
            case CRYPTO_SESSION -> "CRYPTO_SESSION";
            case PAGEFAULT -> "PAGEFAULT";
            case CONFIG -> "CONFIG";
            case BACKEND_SEND_FD -> "BACKEND_SEND_FD";
            case HOST_NOTIFIER -> "HOST_NOTIFIER";
            case INFLIGHT_SHMFD -> "INFLIGHT_SHMFD";
            case RESET_DEVICE -> "RESET_DEVICE";
            case INBAND_NOTIFICATIONS -> "INBAND_NOTIFICATIONS";
            case CONFIGURE_MEM_SLOTS -> "CONFIGURE_MEM_SLOTS";
            case STATUS -> "STATUS";
            default -> "bit " + bit;
        };
    }
}
