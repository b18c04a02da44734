package io.vblk.guest;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;

import static io.vblk.guest.BlkWireLayout.*;
import static io.vblk.guest.GuestVring.LE32;

/**
 * Home thread: the vCPU thread of the owning {@link GuestBlkQueue}. No locking.
 *
 * <p>One preallocated virtio-blk request of a guest queue: its header, status byte,
 * discard/write-zeroes segments, indirect descriptor table and data buffer all live in guest
 * RAM, carved out once at set-up. A workload reuses slots forever; posting one writes only into
 * this memory and the rings.
 *
 * <pre>
 * meta area (128 bytes, 64-byte aligned)
 *   0   virtio_blk_outhdr (16)        device-readable
 *   16  status (1) + 7 pad            device-writable
 *   24  discard/write-zeroes segments, {@value #MAX_DWZ_SEGMENTS} x 16, device-readable
 *   88  pad to 128
 * indirect table: (max segments + 2) x 16 bytes, 16-byte aligned
 * data buffer: max data bytes, 4096-byte aligned (O_DIRECT drivers need aligned iovecs)
 * </pre>
 */
public final class BlkSlot {
    public static final int META_BYTES = 128;
    public static final int META_STATUS = 16;
    public static final int META_DWZ = 24;
    public static final int MAX_DWZ_SEGMENTS = 4;
    /** Written into the status byte before posting: no valid status (5.2.6 has 0..2). */
    public static final int STATUS_UNSET = 0xff;

    final int index;
    final long hdrGpa;
    final long statusGpa;
    final long dwzGpa;
    final long tableGpa;
    final long dataGpa;
    final int dataCapacity;
    final MemorySegment hdr;
    final MemorySegment status;
    final MemorySegment dwz;
    final MemorySegment table;
    final int tableCapacity;
    final MemorySegment data;
    /** A view of {@link #data} for checksum APIs that take a ByteBuffer; made once. */
    final ByteBuffer dataBuffer;

    /**
     * Where the device's status byte of the request in flight is: {@link #status} for a request
     * posted the standard way, elsewhere in guest RAM for a hand-framed one, null for a chain
     * without one.
     */
    MemorySegment statusAt;

    // The request in flight (set by GuestBlkQueue.post).
    int type;
    long sector;
    int dataBytes;
    long submitNanos;
    boolean inFlight;

    /** Free for the workload: e.g. the verify generation written, the block index. */
    public long user0;
    public long user1;
    public int userTag;

    BlkSlot(GuestRam ram, int index, int dataCapacity, int maxSegments) {
        this.index = index;
        this.dataCapacity = dataCapacity;
        long meta = ram.allocate(META_BYTES, 64);
        this.hdrGpa = meta;
        this.statusGpa = meta + META_STATUS;
        this.dwzGpa = meta + META_DWZ;
        this.tableCapacity = maxSegments + 2;
        this.tableGpa = ram.allocate((long) tableCapacity * VringLayout.DESC_BYTES, VringLayout.DESC_ALIGN);
        this.dataGpa = ram.allocate(dataCapacity, 4096);
        MemorySegment m = ram.segment(meta, META_BYTES);
        this.hdr = m.asSlice(0, HDR_BYTES);
        this.status = m.asSlice(META_STATUS, 1);
        this.dwz = m.asSlice(META_DWZ, (long) MAX_DWZ_SEGMENTS * DWZ_BYTES);
        this.table = ram.segment(tableGpa, (long) tableCapacity * VringLayout.DESC_BYTES);
        this.data = ram.segment(dataGpa, dataCapacity);
        this.dataBuffer = data.asByteBuffer();
        this.statusAt = status;
    }

    public int index() {
        return index;
    }

    /** The data buffer in guest RAM (host view). */
    public MemorySegment data() {
        return data;
    }

    public ByteBuffer dataBuffer() {
        return dataBuffer;
    }

    public long dataGpa() {
        return dataGpa;
    }

    public int dataCapacity() {
        return dataCapacity;
    }

    public long hdrGpa() {
        return hdrGpa;
    }

    public long statusGpa() {
        return statusGpa;
    }

    public long dwzGpa() {
        return dwzGpa;
    }

    /** The status byte the device wrote (or {@link #STATUS_UNSET}, also for a chain without one). */
    public int status() {
        MemorySegment at = statusAt;
        return at == null ? STATUS_UNSET : at.get(ValueLayout.JAVA_BYTE, 0) & 0xff;
    }

    public int type() {
        return type;
    }

    public long sector() {
        return sector;
    }

    public int dataBytes() {
        return dataBytes;
    }

    public long submitNanos() {
        return submitNanos;
    }

    public boolean inFlight() {
        return inFlight;
    }

    /** Fills discard/write-zeroes segment {@code i} (5.2.6 virtio_blk_discard_write_zeroes). */
    public void setSegment(int i, long sector, int numSectors, int flags) {
        if (i < 0 || i >= MAX_DWZ_SEGMENTS) {
            throw new IndexOutOfBoundsException("segment " + i + " of " + MAX_DWZ_SEGMENTS);
        }
        writeSegment(dwz, (long) i * DWZ_BYTES, sector, numSectors, flags);
    }

    /** The header as posted: type field (for tests reading back what was sent). */
    public int headerType() {
        return hdr.get(LE32, HDR_TYPE);
    }

    @Override
    public String toString() {
        return "BlkSlot[" + index + " " + typeName(type) + " sector=" + sector + " bytes=" + dataBytes
                + (inFlight ? " in-flight" : "") + "]";
    }
}
