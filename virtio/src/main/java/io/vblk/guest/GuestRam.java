package io.vblk.guest;

import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.FileIo;
import io.vblk.aio.sys.Mmap;
import io.vblk.virtio.memory.GuestMemory;
import io.vblk.virtio.memory.MemoryRegion;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Home thread: the thread that builds the guest (allocation is set-up work); the mapping
 * itself is read and written by the guest's vCPU threads and by the device. The mapping is
 * reference-counted: it is unmapped only when the guest and every {@link GuestMemory} handed out
 * have released it, so a device still holding a map never touches unmapped pages.
 *
 * <p>The emulated guest's RAM: one contiguous range of guest-physical addresses backed by a memfd
 * mapped {@code MAP_SHARED}, so the same pages can be handed to the in-process device (as a
 * {@link GuestMemory}) and to a vhost-user backend (the fd travels with SET_MEM_TABLE and the
 * backend maps it itself). Set-up code carves the rings and request buffers out of it with a
 * bump allocator; nothing is freed back, except that a harness may {@link #rewind} to a
 * {@link #mark()} to reuse the buffers of a finished round.
 *
 * <p>Two more shapes serve tests: RAM of several regions with holes between them
 * ({@link #ofArenaRegions}: a guest address in a hole is one the device must refuse), and RAM laid
 * over memory someone else owns ({@link #wrap}: the frontend's shared memory of a vhost-user test).
 * {@link #gpaBase()}, {@link #size()}, {@link #host()} and {@link #fd()} describe the first
 * region, the only one of memfd RAM.
 */
public final class GuestRam implements AutoCloseable {
    /** Guest-physical address of the first byte: 1 MiB, so that address 0 is never guest memory. */
    public static final long DEFAULT_GPA_BASE = 0x10_0000L;
    private static final long PAGE = 4096;

    private final String name;
    private final int fd;
    private final long gpaBase;
    private final long size;
    private final MemorySegment host;
    private final Arena arena;
    /** Every region, sorted by guest-physical address; index 0 is {@link #gpaBase()}'s. */
    private final long[] regionGpa;
    private final MemorySegment[] regionHost;
    /** False for {@link #wrap}ped memory: releasing the last reference unmaps nothing. */
    private final boolean owned;
    private final AtomicInteger refs = new AtomicInteger(1);
    /** The bump allocator: region index and offset in it of the next free byte. */
    private int nextRegion;
    private long next;
    private boolean closed;

    private GuestRam(String name, int fd, long[] gpas, MemorySegment[] hosts, Arena arena, boolean owned) {
        this.name = name;
        this.fd = fd;
        this.gpaBase = gpas[0];
        this.size = hosts[0].byteSize();
        this.host = hosts[0];
        this.arena = arena;
        this.regionGpa = gpas;
        this.regionHost = hosts;
        this.owned = owned;
        for (int i = 1; i < gpas.length; i++) {
            if (gpas[i] < gpas[i - 1] + hosts[i - 1].byteSize()) {
                throw new IllegalArgumentException("guest RAM regions must be sorted and apart: region at 0x"
                        + Long.toHexString(gpas[i]) + " overlaps the one before");
            }
        }
    }

    private GuestRam(String name, int fd, long gpaBase, MemorySegment host, Arena arena) {
        this(name, fd, new long[] {gpaBase}, new MemorySegment[] {host}, arena, true);
    }

    /**
     * Creates {@code size} bytes (rounded up to a page) of shareable RAM at {@code gpaBase}. Pages
     * are allocated by the kernel on first touch, so a generous size costs only address space.
     * Throws {@link IllegalStateException} naming the failing call and errno.
     */
    public static GuestRam memfd(String name, long gpaBase, long size) {
        if (gpaBase < 0 || (gpaBase & (PAGE - 1)) != 0) {
            throw new IllegalArgumentException("guest RAM base must be page aligned, got 0x" + Long.toHexString(gpaBase));
        }
        long len = VringLayout.alignUp(Math.max(size, PAGE), PAGE);
        int fd = Mmap.memfdCreate(name, Mmap.MFD_CLOEXEC);
        if (fd < 0) {
            throw new IllegalStateException("memfd_create(" + name + "): " + Errno.name(-fd));
        }
        int r = FileIo.ftruncate(fd, len);
        if (r < 0) {
            FileIo.close(fd);
            throw new IllegalStateException("ftruncate(memfd, " + len + "): " + Errno.name(-r));
        }
        long addr = Mmap.mmap(0, len, Mmap.PROT_READ | Mmap.PROT_WRITE, Mmap.MAP_SHARED, fd, 0);
        if (addr < 0) {
            FileIo.close(fd);
            throw new IllegalStateException("mmap(memfd, " + len + "): " + Errno.name((int) -addr));
        }
        MemorySegment host = MemorySegment.ofAddress(addr).reinterpret(len);
        return new GuestRam(name, fd, gpaBase, host, null);
    }

    /**
     * RAM in process-private memory from {@code arena} (no fd: it cannot be shared with a
     * vhost-user backend). For tests and benchmarks of the in-process path that want no syscalls
     * at set-up; the arena is closed with the RAM when it is confined or shared and owned here.
     */
    public static GuestRam ofArena(String name, Arena arena, long gpaBase, long size) {
        long len = VringLayout.alignUp(Math.max(size, PAGE), PAGE);
        MemorySegment host = arena.allocate(len, PAGE);
        return new GuestRam(name, -1, gpaBase, host, arena);
    }

    /**
     * Private RAM of several regions, {@code gpaAndSize} giving (guest-physical address, bytes)
     * pairs in ascending order; each region is a separate allocation from {@code arena}, so two
     * regions adjacent in guest-physical space are not adjacent in this process. The gaps between
     * regions are holes: no guest memory. The allocator fills the regions in order.
     */
    public static GuestRam ofArenaRegions(String name, Arena arena, long... gpaAndSize) {
        if (gpaAndSize.length == 0 || gpaAndSize.length % 2 != 0) {
            throw new IllegalArgumentException("regions come as (gpa, size) pairs, got " + gpaAndSize.length + " values");
        }
        int n = gpaAndSize.length / 2;
        long[] gpas = new long[n];
        MemorySegment[] hosts = new MemorySegment[n];
        for (int i = 0; i < n; i++) {
            gpas[i] = gpaAndSize[2 * i];
            if (gpas[i] < 0 || (gpas[i] & (PAGE - 1)) != 0) {
                throw new IllegalArgumentException("region base must be page aligned, got 0x" + Long.toHexString(gpas[i]));
            }
            hosts[i] = arena.allocate(VringLayout.alignUp(Math.max(gpaAndSize[2 * i + 1], PAGE), PAGE), PAGE);
        }
        return new GuestRam(name, -1, gpas, hosts, arena, true);
    }

    /**
     * RAM laid over {@code host}, memory this object does not own (a vhost-user frontend's shared
     * memory, say), at guest-physical {@code gpaBase}. Closing it unmaps nothing; the owner must
     * keep the memory until every user of this RAM is done.
     */
    public static GuestRam wrap(String name, MemorySegment host, long gpaBase) {
        return new GuestRam(name, -1, new long[] {gpaBase}, new MemorySegment[] {host}, null, false);
    }

    public String name() {
        return name;
    }

    /** The memfd behind the RAM (offset 0 is {@link #gpaBase()}), or -1 for private RAM. */
    public int fd() {
        return fd;
    }

    public long gpaBase() {
        return gpaBase;
    }

    public long size() {
        return size;
    }

    /** The whole mapping in this process. */
    public MemorySegment host() {
        return host;
    }

    /** Host virtual address of the first byte (vhost-user's "user address" of the region). */
    public long hostAddress() {
        return host.address();
    }

    /** Bytes handed out so far (a region the allocator moved past counts in full). */
    public long used() {
        long n = next;
        for (int i = 0; i < nextRegion; i++) {
            n += regionHost[i].byteSize();
        }
        return n;
    }

    /** Number of regions (1 but for {@link #ofArenaRegions}). */
    public int regionCount() {
        return regionGpa.length;
    }

    public long regionGpa(int i) {
        return regionGpa[i];
    }

    public long regionSize(int i) {
        return regionHost[i].byteSize();
    }

    /**
     * Carves {@code bytes} aligned to {@code align} (a power of two) out of the RAM and returns the
     * guest-physical address; a piece never straddles two regions. Set-up time only. Fails when
     * the RAM is full, naming the sizes.
     */
    public long allocate(long bytes, long align) {
        if (bytes <= 0 || Long.bitCount(align) != 1) {
            throw new IllegalArgumentException("allocate(" + bytes + ", align " + align + ")");
        }
        while (true) {
            long base = regionGpa[nextRegion];
            long off = VringLayout.alignUp(base + next, align) - base;
            if (off + bytes <= regionHost[nextRegion].byteSize()) {
                next = off + bytes;
                return base + off;
            }
            if (nextRegion == regionGpa.length - 1) {
                throw new IllegalStateException("guest RAM '" + name + "' is full: need " + bytes + " bytes at offset "
                        + off + ", size " + regionHost[nextRegion].byteSize());
            }
            nextRegion++;
            next = 0;
        }
    }

    /** Where the allocator stands, for a later {@link #rewind}. */
    public long mark() {
        return regionGpa[nextRegion] + next;
    }

    /**
     * Hands out again everything allocated since {@code mark}: for a harness that reuses request
     * buffers once the device has returned them all. The caller guarantees nothing allocated
     * since the mark is still in use.
     */
    public void rewind(long mark) {
        for (int i = regionGpa.length - 1; i >= 0; i--) {
            if (mark >= regionGpa[i] && mark - regionGpa[i] <= regionHost[i].byteSize()) {
                nextRegion = i;
                next = mark - regionGpa[i];
                return;
            }
        }
        throw new IllegalArgumentException("0x" + Long.toHexString(mark) + " is no mark of guest RAM '" + name + "'");
    }

    /** The host view of {@code [gpa, gpa+length)}; throws when it is not inside one region of this RAM. */
    public MemorySegment segment(long gpa, long length) {
        int r = regionOf(gpa, length);
        if (r < 0) {
            throw new IndexOutOfBoundsException("[0x" + Long.toHexString(gpa) + ", +" + length
                    + ") is outside guest RAM '" + name + "' (first region [0x" + Long.toHexString(gpaBase) + ", +"
                    + size + "), " + regionGpa.length + " regions)");
        }
        return regionHost[r].asSlice(gpa - regionGpa[r], length);
    }

    public boolean contains(long gpa, long length) {
        return regionOf(gpa, length) >= 0;
    }

    private int regionOf(long gpa, long length) {
        for (int i = 0; i < regionGpa.length; i++) {
            long sz = regionHost[i].byteSize();
            if (gpa >= regionGpa[i] && length >= 0 && gpa - regionGpa[i] <= sz - length) {
                return i;
            }
        }
        return -1;
    }

    /**
     * A memory map with this RAM's regions, for the in-process device. Each region's user
     * address equals its guest-physical address (the in-process transport has no frontend
     * address space). The map holds a reference on this RAM until its last release.
     */
    public GuestMemory guestMemory() {
        retain();
        List<MemoryRegion> regions = new ArrayList<>();
        for (int i = 0; i < regionGpa.length; i++) {
            regions.add(new MemoryRegion(regionGpa[i], regionHost[i].byteSize(), regionGpa[i], regionHost[i]));
        }
        return GuestMemory.of(regions, this::release);
    }

    /** Takes a reference; fails once the RAM is gone. Any thread. */
    public GuestRam retain() {
        int n;
        do {
            n = refs.get();
            if (n <= 0) {
                throw new IllegalStateException("guest RAM '" + name + "' already unmapped");
            }
        } while (!refs.compareAndSet(n, n + 1));
        return this;
    }

    /** Drops a reference; the last one unmaps the RAM and closes the memfd. Any thread. */
    public void release() {
        int n = refs.decrementAndGet();
        if (n == 0) {
            if (!owned) {
                return;
            }
            if (arena != null) {
                arena.close();
            } else {
                Mmap.munmap(host.address(), size);
                FileIo.close(fd);
            }
        } else if (n < 0) {
            throw new IllegalStateException("guest RAM '" + name + "' released more often than retained");
        }
    }

    /** Drops the guest's own reference (once); the pages stay while a device still holds a map. */
    @Override
    public void close() {
        if (!closed) {
            closed = true;
            release();
        }
    }

    @Override
    public String toString() {
        return "GuestRam[" + name + " gpa=0x" + Long.toHexString(gpaBase) + " size=" + size + " fd=" + fd
                + (regionGpa.length > 1 ? " regions=" + regionGpa.length : "") + "]";
    }
}
