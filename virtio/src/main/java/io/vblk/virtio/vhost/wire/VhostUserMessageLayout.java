package io.vblk.virtio.vhost.wire;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Any thread: constants and stateless accessors.
 *
 * <p>Byte layout of a vhost-user message and of every payload a block device's session uses
 * (QEMU docs/interop/vhost-user.rst, "Message Specification"). All numbers are in the machine's
 * native byte order ("All numbers are in the machine native byte order"); the header is packed,
 * so a payload starts at byte 12 and its 64-bit fields are read unaligned.
 *
 * <pre>
 * Header, 12 bytes (VhostUserHeader, QEMU_PACKED):
 *   0         4         8         12
 *   +---------+---------+---------+-------------------------+
 *   | request |  flags  |  size   | payload: size bytes     |
 *   +---------+---------+---------+-------------------------+
 *   flags: bits 0-1 version (0x1), bit 2 REPLY (0x4), bit 3 NEED_REPLY (0x8)
 *
 * u64, 8 bytes:                         vring state, 8 bytes:
 *   0                   8                 0         4         8
 *   +-------------------+                 +---------+---------+
 *   |        u64        |                 |  index  |   num   |
 *   +-------------------+                 +---------+---------+
 *   SET_VRING_KICK/CALL/ERR: bits 0-7 queue index, bit 8 VRING_NOFD (no fd attached)
 *
 * vring address, 40 bytes (struct vhost_vring_addr):
 *   0       4       8              16             24             32             40
 *   +-------+-------+--------------+--------------+--------------+--------------+
 *   | index | flags | desc (uaddr) | used (uaddr) | avail(uaddr) | log (gpa)    |
 *   +-------+-------+--------------+--------------+--------------+--------------+
 *
 * memory region, 32 bytes (VhostUserMemoryRegion):
 *   0                8                16               24               32
 *   +----------------+----------------+----------------+----------------+
 *   | guest_phys_addr|  memory_size   | userspace_addr |  mmap_offset   |
 *   +----------------+----------------+----------------+----------------+
 *
 * memory table, 8 + 32 * nregions bytes, at most 8 regions (VhostUserMemory, SET_MEM_TABLE):
 *   0          4          8           40          72
 *   +----------+----------+-----------+-----------+-- ... --+
 *   | nregions | padding  | region 0  | region 1  |  ...    |
 *   +----------+----------+-----------+-----------+-- ... --+
 *
 * single memory region, 40 bytes (VhostUserMemRegMsg, ADD_MEM_REG / REM_MEM_REG):
 *   0                8                                  40
 *   +----------------+----------------------------------+
 *   |    padding     |  memory region (32 bytes)        |
 *   +----------------+----------------------------------+
 *
 * config space, 12 + size bytes, size at most 256 (VhostUserConfig, GET_CONFIG / SET_CONFIG):
 *   0         4         8         12
 *   +---------+---------+---------+---------------------------+
 *   | offset  |  size   |  flags  | config bytes (size)       |
 *   +---------+---------+---------+---------------------------+
 *   flags: 0 = writable fields, 1 = live migration
 *
 * inflight description, 24 bytes (VhostUserInflight; not packed, so 4 bytes of tail padding):
 *   0                8                16       18       20        24
 *   +----------------+----------------+--------+--------+---------+
 *   |   mmap_size    |  mmap_offset   | num_q  | q_size | padding |
 *   +----------------+----------------+--------+--------+---------+
 * </pre>
 */
public final class VhostUserMessageLayout {
    private VhostUserMessageLayout() {
    }

    // ---------------------------------------------------------------- header

    public static final int HEADER_BYTES = 12;
    public static final long REQUEST = 0;
    public static final long FLAGS = 4;
    public static final long SIZE = 8;

    /** "Lower 2 bits are the version (currently 0x01)". */
    public static final int VERSION_MASK = 0x3;
    public static final int VERSION = 0x1;
    /** "Bit 2 is the reply flag - needs to be sent on each reply from the back-end". */
    public static final int FLAG_REPLY = 0x4;
    /** "Bit 3 is the need_reply flag" (REPLY_ACK). */
    public static final int FLAG_NEED_REPLY = 0x8;

    // ---------------------------------------------------------------- payloads

    public static final int U64_BYTES = 8;

    public static final int VRING_STATE_BYTES = 8;
    public static final long VRING_STATE_INDEX = 0;
    public static final long VRING_STATE_NUM = 4;

    /** SET_VRING_KICK/CALL/ERR: "Bits (0-7) of the payload contain the vring index". */
    public static final long VRING_IDX_MASK = 0xff;
    /** "Bit 8 is the invalid FD flag" (VHOST_USER_VRING_NOFD_MASK). */
    public static final long VRING_NOFD = 0x100;

    public static final int VRING_ADDR_BYTES = 40;
    public static final long VRING_ADDR_INDEX = 0;
    public static final long VRING_ADDR_FLAGS = 4;
    public static final long VRING_ADDR_DESC = 8;
    public static final long VRING_ADDR_USED = 16;
    public static final long VRING_ADDR_AVAIL = 24;
    public static final long VRING_ADDR_LOG = 32;
    /** vhost_vring_addr flags bit 0: VHOST_VRING_F_LOG (dirty logging of the used ring). */
    public static final int VRING_F_LOG = 0x1;

    public static final int REGION_BYTES = 32;
    public static final long REGION_GPA = 0;
    public static final long REGION_SIZE = 8;
    public static final long REGION_UADDR = 16;
    public static final long REGION_MMAP_OFFSET = 24;

    /** VHOST_MEMORY_BASELINE_NREGIONS: regions in one SET_MEM_TABLE (and fds in one message). */
    public static final int MAX_MEM_TABLE_REGIONS = 8;
    public static final long MEM_TABLE_NREGIONS = 0;
    public static final long MEM_TABLE_PADDING = 4;
    public static final long MEM_TABLE_REGIONS = 8;
    public static final int MEM_TABLE_MIN_BYTES = 8;
    public static final int MEM_TABLE_MAX_BYTES = 8 + REGION_BYTES * MAX_MEM_TABLE_REGIONS;

    public static final int MEM_REG_BYTES = 40;
    public static final long MEM_REG_PADDING = 0;
    public static final long MEM_REG_REGION = 8;

    /** VHOST_USER_MAX_CONFIG_SIZE. */
    public static final int MAX_CONFIG_BYTES = 256;
    public static final int CONFIG_HEADER_BYTES = 12;
    public static final long CONFIG_OFFSET = 0;
    public static final long CONFIG_SIZE = 4;
    public static final long CONFIG_FLAGS = 8;
    public static final long CONFIG_DATA = 12;
    public static final int CONFIG_FLAG_WRITABLE = 0;
    public static final int CONFIG_FLAG_MIGRATION = 1;

    /** "log description" (SET_LOG_BASE with LOG_SHMFD): u64 mmap_size, u64 mmap_offset. */
    public static final int LOG_BYTES = 16;
    public static final long LOG_MMAP_SIZE = 0;
    public static final long LOG_MMAP_OFFSET = 8;

    public static final int INFLIGHT_BYTES = 24;
    public static final long INFLIGHT_MMAP_SIZE = 0;
    public static final long INFLIGHT_MMAP_OFFSET = 8;
    public static final long INFLIGHT_NUM_QUEUES = 16;
    public static final long INFLIGHT_QUEUE_SIZE = 18;

    /** The largest payload a block session carries: GET_CONFIG/SET_CONFIG (12 + 256). */
    public static final int MAX_PAYLOAD_BYTES = CONFIG_HEADER_BYTES + MAX_CONFIG_BYTES;

    // ---------------------------------------------------------------- accessors (native order, unaligned)

    public static int getInt(MemorySegment s, long off) {
        return s.get(ValueLayout.JAVA_INT_UNALIGNED, off);
    }

    public static void putInt(MemorySegment s, long off, int v) {
        s.set(ValueLayout.JAVA_INT_UNALIGNED, off, v);
    }

    public static long getLong(MemorySegment s, long off) {
        return s.get(ValueLayout.JAVA_LONG_UNALIGNED, off);
    }

    public static void putLong(MemorySegment s, long off, long v) {
        s.set(ValueLayout.JAVA_LONG_UNALIGNED, off, v);
    }

    public static int getU16(MemorySegment s, long off) {
        return s.get(ValueLayout.JAVA_SHORT_UNALIGNED, off) & 0xffff;
    }

    public static void putU16(MemorySegment s, long off, int v) {
        s.set(ValueLayout.JAVA_SHORT_UNALIGNED, off, (short) v);
    }
}
