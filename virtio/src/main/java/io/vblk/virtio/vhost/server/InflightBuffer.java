package io.vblk.virtio.vhost.server;

import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.FileIo;
import io.vblk.aio.sys.Mmap;
import io.vblk.virtio.vhost.wire.InflightLayout;
import io.vblk.virtio.vhost.wire.VhostUserMessageLayout;
import io.vblk.virtio.vhost.wire.VhostUserProtocolException;

import java.lang.foreign.MemorySegment;

/**
 * Home thread: the connection's.
 *
 * <p>The inflight-tracking buffer shared with the front-end (GET_INFLIGHT_FD creates it, the
 * front-end keeps it across back-end reconnects and hands it back with SET_INFLIGHT_FD).
 *
 * <p>The buffer is created zeroed with the size and per-queue layout of {@link InflightLayout},
 * kept mapped for the session, and its geometry (queues, queue size) checked when it comes back.
 * Each queue's region is kept by a record of the buffer's layout ({@link #record}): a
 * {@link SplitInflightRecord} or a {@link PackedInflightRecord}, chosen when the buffer is made
 * from the negotiated VIRTIO_F_RING_PACKED, which the queue updates as it pops and pushes.
 */
final class InflightBuffer implements AutoCloseable {
    /** The most a queue holds (virtio 1.x 2.7: split queue size at most 32768). */
    static final int MAX_QUEUE_SIZE = 32768;

    private final int fd;
    /** Start of the mapping (what munmap takes) and of the buffer inside it (mmap_offset further). */
    private final long mapBase;
    private final long mapAddr;
    private final long mapLen;
    private final long size;
    private final int numQueues;
    private final int queueSize;
    /** The regions are QueueRegionPacked (true) or QueueRegionSplit. */
    private final boolean packed;
    private final InflightRecord[] records;

    private InflightBuffer(int fd, long mapBase, long mapAddr, long mapLen, long size, int numQueues, int queueSize,
                           boolean packed) {
        this.fd = fd;
        this.mapBase = mapBase;
        this.mapAddr = mapAddr;
        this.mapLen = mapLen;
        this.size = size;
        this.numQueues = numQueues;
        this.queueSize = queueSize;
        this.packed = packed;
        this.records = new InflightRecord[numQueues];
    }

    /** Queue {@code q}'s record (one object per queue for the buffer's life). */
    InflightRecord record(int q) {
        if (records[q] == null) {
            records[q] = packed ? new PackedInflightRecord(queueRegion(q), queueSize)
                    : new SplitInflightRecord(queueRegion(q), queueSize);
        }
        return records[q];
    }

    static void checkGeometry(String what, int numQueues, int queueSize, int deviceQueues) throws VhostUserProtocolException {
        if (numQueues < 1 || numQueues > deviceQueues) {
            throw new VhostUserProtocolException(what + ": num_queues " + numQueues + ", the device has " + deviceQueues);
        }
        if (queueSize < 1 || queueSize > MAX_QUEUE_SIZE || Integer.bitCount(queueSize) != 1) {
            throw new VhostUserProtocolException(what + ": queue_size " + queueSize + " is not a power of two up to " + MAX_QUEUE_SIZE);
        }
    }

    /** A new zeroed buffer in a memfd (GET_INFLIGHT_FD). */
    static InflightBuffer create(int numQueues, int queueSize) throws VhostUserProtocolException {
        return create(numQueues, queueSize, false);
    }

    /** A new zeroed buffer in a memfd (GET_INFLIGHT_FD), laid out for packed or split rings. */
    static InflightBuffer create(int numQueues, int queueSize, boolean packed) throws VhostUserProtocolException {
        long size = InflightLayout.bufferBytes(numQueues, queueSize, packed);
        int fd = Mmap.memfdCreate("vblk-inflight", Mmap.MFD_CLOEXEC);
        if (fd < 0) {
            throw new VhostUserProtocolException("GET_INFLIGHT_FD: memfd_create failed: " + Errno.name(-fd));
        }
        int r = FileIo.ftruncate(fd, size);
        if (r < 0) {
            FileIo.close(fd);
            throw new VhostUserProtocolException("GET_INFLIGHT_FD: ftruncate to " + size + " failed: " + Errno.name(-r));
        }
        long addr = Mmap.mmap(0, size, Mmap.PROT_READ | Mmap.PROT_WRITE, Mmap.MAP_SHARED, fd, 0);
        if (addr < 0 && addr > -4096) {
            FileIo.close(fd);
            throw new VhostUserProtocolException("GET_INFLIGHT_FD: mmap of " + size + " bytes failed: " + Errno.name((int) -addr));
        }
        return new InflightBuffer(fd, addr, addr, size, size, numQueues, queueSize, packed);
    }

    /** Maps a buffer handed back (SET_INFLIGHT_FD); takes ownership of {@code fd}. */
    static InflightBuffer adopt(int fd, long mmapSize, long mmapOffset, int numQueues, int queueSize, boolean packed)
            throws VhostUserProtocolException {
        long need = InflightLayout.bufferBytes(numQueues, queueSize, packed);
        if (mmapSize < need || mmapOffset < 0 || mmapOffset + mmapSize < mmapSize) {
            FileIo.close(fd);
            throw new VhostUserProtocolException("SET_INFLIGHT_FD: mmap_size " + mmapSize + " at offset " + mmapOffset
                    + " cannot hold " + numQueues + " queues of " + queueSize + " (" + need + " bytes)");
        }
        // As for memory regions: a mapping past the end of its file maps, but the first access there raises SIGBUS.
        long fdSize = FileIo.fileSize(fd);
        if (fdSize < mmapOffset + mmapSize) {
            FileIo.close(fd);
            throw new VhostUserProtocolException("SET_INFLIGHT_FD: mmap_offset + mmap_size = " + (mmapOffset + mmapSize)
                    + " bytes lies beyond the end of its fd ("
                    + (fdSize < 0 ? "fstat failed: " + Errno.name((int) -fdSize) : fdSize + " bytes") + ")");
        }
        long addr = Mmap.mmap(0, mmapOffset + mmapSize, Mmap.PROT_READ | Mmap.PROT_WRITE, Mmap.MAP_SHARED, fd, 0);
        if (addr < 0 && addr > -4096) {
            FileIo.close(fd);
            throw new VhostUserProtocolException("SET_INFLIGHT_FD: mmap of " + (mmapOffset + mmapSize) + " bytes failed: "
                    + Errno.name((int) -addr));
        }
        return new InflightBuffer(fd, addr, addr + mmapOffset, mmapOffset + mmapSize, mmapSize, numQueues, queueSize,
                packed);
    }

    int fd() {
        return fd;
    }

    long size() {
        return size;
    }

    int numQueues() {
        return numQueues;
    }

    int queueSize() {
        return queueSize;
    }

    boolean packed() {
        return packed;
    }

    /** Queue {@code q}'s region. */
    MemorySegment queueRegion(int q) {
        long per = InflightLayout.queueRegionBytes(queueSize, packed);
        return MemorySegment.ofAddress(mapAddr + per * q).reinterpret(per);
    }

    /** Heads marked in flight across all queues of a buffer some back-end initialised (version != 0). */
    int markedInflight() {
        int n = 0;
        for (int q = 0; q < numQueues; q++) {
            MemorySegment r = queueRegion(q);
            if (VhostUserMessageLayout.getU16(r, InflightLayout.VERSION) == 0) {
                continue;
            }
            for (int i = 0; i < queueSize; i++) {
                // DESC_INFLIGHT and PD_INFLIGHT are both byte 0 of an entry.
                if (r.get(java.lang.foreign.ValueLayout.JAVA_BYTE, InflightLayout.desc(i, packed)
                        + InflightLayout.DESC_INFLIGHT) != 0) {
                    n++;
                }
            }
        }
        return n;
    }

    @Override
    public void close() {
        Mmap.munmap(mapBase, mapLen);
        FileIo.close(fd);
    }
}
