package io.vblk.guest;

/**
 * Any thread: constants and pure functions. All fields little-endian.
 *
 * <p>The virtio-blk request and configuration space as the guest driver writes and reads them
 * (virtio 1.x section 5.2). Kept apart from the device's own parser for the reason given in
 * {@link VringLayout}.
 *
 * <pre>
 * Request header (device-readable, first descriptor(s)), 5.2.6
 *   struct virtio_blk_outhdr {       // 16 bytes
 *     le32 type;                     // 0   IN=0 OUT=1 FLUSH=4 GET_ID=8 DISCARD=11 WRITE_ZEROES=13
 *     le32 reserved;                 // 4   (ioprio in legacy drivers)
 *     le64 sector;                   // 8   offset in 512-byte sectors
 *   };
 *   u8 data[];                       // IN: device-writable; OUT/DISCARD/WRITE_ZEROES: device-readable
 *   u8 status;                       // last byte, device-writable: OK=0 IOERR=1 UNSUPP=2
 *
 * DISCARD / WRITE_ZEROES segment (the data of those requests), 5.2.6
 *   struct virtio_blk_discard_write_zeroes {   // 16 bytes
 *     le64 sector;                   // 0
 *     le32 num_sectors;              // 8
 *     le32 flags;                    // 12  bit 0 = unmap, bits 1..31 reserved
 *   };
 *
 * Configuration space, 5.2.4
 *   le64 capacity;                   // 0   in 512-byte sectors
 *   le32 size_max;                   // 8   SIZE_MAX
 *   le32 seg_max;                    // 12  SEG_MAX
 *   le16 cylinders; u8 heads; u8 sectors;      // 16  GEOMETRY
 *   le32 blk_size;                   // 20  BLK_SIZE
 *   u8 physical_block_exp;           // 24  TOPOLOGY
 *   u8 alignment_offset;             // 25
 *   le16 min_io_size;                // 26
 *   le32 opt_io_size;                // 28
 *   u8 writeback;                    // 32  CONFIG_WCE
 *   u8 unused0;                      // 33
 *   le16 num_queues;                 // 34  MQ
 *   le32 max_discard_sectors;        // 36  DISCARD
 *   le32 max_discard_seg;            // 40
 *   le32 discard_sector_alignment;   // 44
 *   le32 max_write_zeroes_sectors;   // 48  WRITE_ZEROES
 *   le32 max_write_zeroes_seg;       // 52
 *   u8 write_zeroes_may_unmap;       // 56
 *   u8 unused1[3];                   // 57
 * </pre>
 */
public final class BlkWireLayout {
    private BlkWireLayout() {
    }

    /** 5.2: virtio device ID of a block device. */
    public static final int VIRTIO_ID_BLOCK = 2;
    /** 5.2.6: "sector ... the offset (multiplied by 512)". */
    public static final int SECTOR_BYTES = 512;
    public static final int SECTOR_SHIFT = 9;

    // -- request header --
    public static final int HDR_BYTES = 16;
    public static final int HDR_TYPE = 0;
    public static final int HDR_RESERVED = 4;
    public static final int HDR_SECTOR = 8;
    public static final int STATUS_BYTES = 1;

    // -- request types, 5.2.6 --
    public static final int T_IN = 0;
    public static final int T_OUT = 1;
    public static final int T_FLUSH = 4;
    public static final int T_GET_ID = 8;
    public static final int T_GET_LIFETIME = 10;
    public static final int T_DISCARD = 11;
    public static final int T_WRITE_ZEROES = 13;
    public static final int T_SECURE_ERASE = 14;

    // -- status, 5.2.6 --
    public static final int S_OK = 0;
    public static final int S_IOERR = 1;
    public static final int S_UNSUPP = 2;

    /** 5.2.6: GET_ID answers with a 20-byte, not necessarily NUL-terminated, serial string. */
    public static final int ID_BYTES = 20;

    // -- discard / write-zeroes segment --
    public static final int DWZ_BYTES = 16;
    public static final int DWZ_SECTOR = 0;
    public static final int DWZ_NUM_SECTORS = 8;
    public static final int DWZ_FLAGS = 12;
    public static final int DWZ_FLAG_UNMAP = 1;

    // -- configuration space offsets, 5.2.4 --
    public static final int CFG_CAPACITY = 0;
    public static final int CFG_SIZE_MAX = 8;
    public static final int CFG_SEG_MAX = 12;
    public static final int CFG_GEOMETRY_CYLINDERS = 16;
    public static final int CFG_GEOMETRY_HEADS = 18;
    public static final int CFG_GEOMETRY_SECTORS = 19;
    public static final int CFG_BLK_SIZE = 20;
    public static final int CFG_PHYSICAL_BLOCK_EXP = 24;
    public static final int CFG_ALIGNMENT_OFFSET = 25;
    public static final int CFG_MIN_IO_SIZE = 26;
    public static final int CFG_OPT_IO_SIZE = 28;
    public static final int CFG_WRITEBACK = 32;
    public static final int CFG_NUM_QUEUES = 34;
    public static final int CFG_MAX_DISCARD_SECTORS = 36;
    public static final int CFG_MAX_DISCARD_SEG = 40;
    public static final int CFG_DISCARD_SECTOR_ALIGNMENT = 44;
    public static final int CFG_MAX_WRITE_ZEROES_SECTORS = 48;
    public static final int CFG_MAX_WRITE_ZEROES_SEG = 52;
    public static final int CFG_WRITE_ZEROES_MAY_UNMAP = 56;
    /** Bytes of configuration space the guest reads (through write_zeroes_may_unmap and padding). */
    public static final int CFG_BYTES_READ = 60;

    /** Writes a request header {type, reserved, sector} at {@code off} of {@code seg}. */
    public static void writeHeader(java.lang.foreign.MemorySegment seg, long off, int type, int reserved, long sector) {
        seg.set(GuestVring.LE32, off + HDR_TYPE, type);
        seg.set(GuestVring.LE32, off + HDR_RESERVED, reserved);
        seg.set(GuestVring.LE64, off + HDR_SECTOR, sector);
    }

    /** Writes discard/write-zeroes segment {sector, num_sectors, flags} at {@code off} of {@code seg}. */
    public static void writeSegment(java.lang.foreign.MemorySegment seg, long off, long sector, int numSectors,
                                    int flags) {
        seg.set(GuestVring.LE64, off + DWZ_SECTOR, sector);
        seg.set(GuestVring.LE32, off + DWZ_NUM_SECTORS, numSectors);
        seg.set(GuestVring.LE32, off + DWZ_FLAGS, flags);
    }

    public static String typeName(int type) {
        return switch (type) {
            case T_IN -> "IN";
            case T_OUT -> "OUT";
            case T_FLUSH -> "FLUSH";
            case T_GET_ID -> "GET_ID";
            case T_GET_LIFETIME -> "GET_LIFETIME";
            case T_DISCARD -> "DISCARD";
            case T_WRITE_ZEROES -> "WRITE_ZEROES";
            case T_SECURE_ERASE -> "SECURE_ERASE";
            default -> "type" + type;
        };
    }

    public static String statusName(int status) {
        return switch (status) {
            case S_OK -> "OK";
            case S_IOERR -> "IOERR";
            case S_UNSUPP -> "UNSUPP";
            default -> "status" + status;
        };
    }
}
