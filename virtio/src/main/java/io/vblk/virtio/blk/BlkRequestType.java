package io.vblk.virtio.blk;

/**
 * Any thread: constants.
 *
 * <p>The {@code type} field of a virtio-blk request (virtio 1.2 section 5.2.6).
 */
public final class BlkRequestType {
    /** 5.2.6: read sectors into data. */
    public static final int IN = 0;
    /** 5.2.6: write data to sectors. */
    public static final int OUT = 1;
    /** 5.2.6: commit volatile writes. */
    public static final int FLUSH = 4;
    /** 5.2.6: fetch the 20-byte device ID string. */
    public static final int GET_ID = 8;
    /** 5.2.6: storage lifetime (needs VIRTIO_BLK_F_LIFETIME). */
    public static final int GET_LIFETIME = 10;
    /** 5.2.6: discard ranges. */
    public static final int DISCARD = 11;
    /** 5.2.6: write zeroes to ranges. */
    public static final int WRITE_ZEROES = 13;
    /** 5.2.6: secure erase ranges (needs VIRTIO_BLK_F_SECURE_ERASE; same segments as DISCARD). */
    public static final int SECURE_ERASE = 14;

    /** 5.2.6: "The device ID string is a NUL-padded ASCII string up to 20 bytes long" (VIRTIO_BLK_ID_BYTES). */
    public static final int ID_BYTES = 20;

    /** 5.2.6: sectors are always 512 bytes, whatever blk_size says (5.2.5). */
    public static final int SECTOR_SIZE = 512;
    public static final int SECTOR_SHIFT = 9;

    private BlkRequestType() {
    }

    public static String name(int type) {
        return switch (type) {
            case IN -> "in";
            case OUT -> "out";
            case FLUSH -> "flush";
            case GET_ID -> "get-id";
            case GET_LIFETIME -> "get-lifetime";
            case DISCARD -> "discard";
            case WRITE_ZEROES -> "write-zeroes";
            case SECURE_ERASE -> "secure-erase";
            default -> "type" + Integer.toUnsignedString(type);
        };
    }
}
