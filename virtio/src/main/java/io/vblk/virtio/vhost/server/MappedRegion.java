package io.vblk.virtio.vhost.server;

import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.FileIo;
import io.vblk.aio.sys.Mmap;
import io.vblk.virtio.memory.MemoryRegion;
import io.vblk.virtio.vhost.wire.VhostUserCodec.MemRegion;
import io.vblk.virtio.vhost.wire.VhostUserProtocolException;

import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Any thread: immutable apart from the atomic count; {@link #release()} may run on an IoThread.
 *
 * <p>One guest memory region mapped from the fd the front-end passed (SET_MEM_TABLE, ADD_MEM_REG).
 * The whole file is mapped from offset 0 up to {@code mmap_offset + memory_size} and the region
 * starts {@code mmap_offset} bytes in, so an offset that is not page-aligned works (QEMU passes
 * the RAMBlock's fd with the region's offset inside it). The fd is closed once mapped.
 *
 * <p>Reference-counted: the connection's memory table holds one reference and every
 * {@link io.vblk.virtio.memory.GuestMemory} map built from it holds one; the mapping goes away
 * with the last, so a queue or request still using an older map never sees it unmapped.
 */
public final class MappedRegion {
    /** MAP_NORESERVE (asm-generic mman: 0x4000): guest RAM is the front-end's, reserve no swap for it. */
    static final int MAP_NORESERVE = 0x4000;

    private final MemRegion desc;
    private final long mapAddr;
    private final long mapLen;
    private final MemorySegment host;
    private final AtomicInteger refs = new AtomicInteger(1);

    private MappedRegion(MemRegion desc, long mapAddr, long mapLen) {
        this.desc = desc;
        this.mapAddr = mapAddr;
        this.mapLen = mapLen;
        this.host = MemorySegment.ofAddress(mapAddr + desc.mmapOffset()).reinterpret(desc.size());
    }

    /**
     * Checks {@code d} and maps it from {@code fd}. The fd is closed in every case (mapped or not).
     * A region of size 0, or one whose ends overflow, is a protocol error; so is one that reaches
     * past the end of the fd (fstat: the first access there would fault), and a failed mmap (the
     * front-end passed an fd that cannot back the region).
     */
    public static MappedRegion map(MemRegion d, int fd) throws VhostUserProtocolException {
        try {
            check(d);
            long len = d.mmapOffset() + d.size();
            // A mapping past the end of its file maps, but the first access there raises SIGBUS
            // (mmap(2): "Use of a mapped region can result in these signals: SIGBUS ... a portion
            // of the buffer that does not correspond to the file"), so the fd's size is checked.
            long fdSize = FileIo.fileSize(fd);
            if (fdSize < 0) {
                throw new VhostUserProtocolException("memory region " + d.describe() + ": fstat of fd " + fd
                        + " failed: " + Errno.name((int) -fdSize));
            }
            if (fdSize < len) {
                throw new VhostUserProtocolException("memory region " + d.describe() + ": mmap_offset + size = " + len
                        + " bytes lies beyond the end of its fd (" + fdSize + " bytes)");
            }
            long addr = Mmap.mmap(0, len, Mmap.PROT_READ | Mmap.PROT_WRITE, Mmap.MAP_SHARED | MAP_NORESERVE, fd, 0);
            if (addr < 0 && addr > -4096) {
                throw new VhostUserProtocolException("memory region " + d.describe() + ": mmap of fd " + fd + " for "
                        + len + " bytes failed: " + Errno.name((int) -addr));
            }
            return new MappedRegion(d, addr, len);
        } finally {
            FileIo.close(fd);
        }
    }

    /** Structural checks that need no mapping (sizes, overflow). */
    public static void check(MemRegion d) throws VhostUserProtocolException {
        // The wire fields are u64: a value with bit 63 set is a size of 2^63 or more, not a negative one.
        if (d.size() == 0) {
            throw new VhostUserProtocolException("memory region " + d.describe() + ": size must not be 0");
        }
        if (d.size() < 0) {
            throw new VhostUserProtocolException("memory region " + d.describe() + ": size " + Long.toUnsignedString(d.size())
                    + " is 2^63 bytes or more, beyond any mappable region");
        }
        if (d.mmapOffset() < 0) {
            throw new VhostUserProtocolException("memory region " + d.describe() + ": mmap_offset "
                    + Long.toUnsignedString(d.mmapOffset()) + " is 2^63 bytes or more, beyond any mappable file");
        }
        if (d.mmapOffset() + d.size() < d.size()) {
            throw new VhostUserProtocolException("memory region " + d.describe() + ": mmap_offset + size overflows");
        }
        if (d.gpa() < 0 || d.gpa() + d.size() < d.gpa()) {
            throw new VhostUserProtocolException("memory region " + d.describe() + ": guest range wraps the address space");
        }
        if (d.uaddr() + d.size() != 0 && Long.compareUnsigned(d.uaddr() + d.size(), d.uaddr()) < 0) {
            throw new VhostUserProtocolException("memory region " + d.describe() + ": user range wraps the address space");
        }
    }

    public MemRegion desc() {
        return desc;
    }

    /** The region as a guest memory map sees it. */
    public MemoryRegion asMemoryRegion() {
        return new MemoryRegion(desc.gpa(), desc.size(), desc.uaddr(), host);
    }

    /** True when this is the region REM_MEM_REG names: same guest address, user address and size ("The mmap offset is ignored"). */
    public boolean matches(MemRegion d) {
        return d.gpa() == desc.gpa() && d.uaddr() == desc.uaddr() && d.size() == desc.size();
    }

    public MappedRegion retain() {
        int n;
        do {
            n = refs.get();
            if (n <= 0) {
                throw new IllegalStateException("memory region " + desc.describe() + " already unmapped");
            }
        } while (!refs.compareAndSet(n, n + 1));
        return this;
    }

    /** Drops a reference; the last one unmaps. */
    public void release() {
        int n = refs.decrementAndGet();
        if (n == 0) {
            Mmap.munmap(mapAddr, mapLen);
        } else if (n < 0) {
            throw new IllegalStateException("memory region " + desc.describe() + " released more often than retained");
        }
    }

    /** References held (tests). */
    public int refCount() {
        return refs.get();
    }
}
