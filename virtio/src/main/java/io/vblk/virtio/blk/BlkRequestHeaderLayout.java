package io.vblk.virtio.blk;

/**
 * Any thread: constants.
 *
 * <p>The device-readable header that starts every virtio-blk request, and the device-writable status
 * byte that ends it (virtio 1.2 section 5.2.6, {@code struct virtio_blk_req}). Offsets count bytes
 * of the chain's readable part (header) and writable part (status: its last byte), whatever the
 * descriptor boundaries (2.7.4.1).
 *
 * <pre>
 *  readable:  byte 0          4              8                16      16+n
 *             +-----------+--------------+----------------+--------+
 *             | type le32 | reserved le32| sector le64    | data[] |  (OUT, DISCARD, WRITE_ZEROES)
 *             +-----------+--------------+----------------+--------+
 *  writable:  byte 0                  n       n+1
 *             +----------------------+--------+
 *             | data[] (IN, GET_ID)  | status |  status: OK 0, IOERR 1, UNSUPP 2
 *             +----------------------+--------+
 * </pre>
 */
public final class BlkRequestHeaderLayout {
    public static final int TYPE = 0;
    /** 5.2.6: formerly ioprio; ignored. */
    public static final int RESERVED = 4;
    /** 5.2.6: offset in 512-byte sectors; "unused and set to 0 for commands other than read or write". */
    public static final int SECTOR = 8;
    public static final int BYTES = 16;
    /** The status byte's size at the end of the writable part. */
    public static final int STATUS_BYTES = 1;

    private BlkRequestHeaderLayout() {
    }
}
