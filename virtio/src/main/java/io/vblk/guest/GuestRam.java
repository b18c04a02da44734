package io.vblk.guest;

import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.Sys;
import io.vblk.virtio.memory.GuestMemory;
import io.vblk.virtio.memory.MemoryRegion;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
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
 * bump allocator; nothing is ever freed back.
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
    private final AtomicInteger refs = new AtomicInteger(1);
    private long next;
    private boolean closed;

    private GuestRam(String name, int fd, long gpaBase, long size, MemorySegment host, Arena arena) {
        this.name = name;
        this.fd = fd;
        this.gpaBase = gpaBase;
        this.size = size;
        this.host = host;
        this.arena = arena;
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
        int fd = Sys.memfdCreate(name, Sys.MFD_CLOEXEC);
        if (fd < 0) {
            throw new IllegalStateException("memfd_create(" + name + "): " + Errno.name(-fd));
        }
        int r = Sys.ftruncate(fd, len);
        if (r < 0) {
            Sys.close(fd);
            throw new IllegalStateException("ftruncate(memfd, " + len + "): " + Errno.name(-r));
        }
        long addr = Sys.mmap(0, len, Sys.PROT_READ | Sys.PROT_WRITE, Sys.MAP_SHARED, fd, 0);
        if (addr < 0) {
            Sys.close(fd);
            throw new IllegalStateException("mmap(memfd, " + len + "): " + Errno.name((int) -addr));
        }
        MemorySegment host = MemorySegment.ofAddress(addr).reinterpret(len);
        return new GuestRam(name, fd, gpaBase, len, host, null);
    }

    /**
     * RAM in process-private memory from {@code arena} (no fd: it cannot be shared with a
     * vhost-user backend). For tests and benchmarks of the in-process path that want no syscalls
     * at set-up; the arena is closed with the RAM when it is confined or shared and owned here.
     */
    public static GuestRam ofArena(String name, Arena arena, long gpaBase, long size) {
        long len = VringLayout.alignUp(Math.max(size, PAGE), PAGE);
        MemorySegment host = arena.allocate(len, PAGE);
        return new GuestRam(name, -1, gpaBase, len, host, arena);
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

    /** Bytes handed out so far. */
    public long used() {
        return next;
    }

    /**
     * Carves {@code bytes} aligned to {@code align} (a power of two) out of the RAM and returns the
     * guest-physical address. Set-up time only. Fails when the RAM is full, naming the sizes.
     */
    public long allocate(long bytes, long align) {
        if (bytes <= 0 || Long.bitCount(align) != 1) {
            throw new IllegalArgumentException("allocate(" + bytes + ", align " + align + ")");
        }
        long off = VringLayout.alignUp(next, align);
        if (off + bytes > size) {
            throw new IllegalStateException("guest RAM '" + name + "' is full: need " + bytes + " bytes at offset "
                    + off + ", size " + size);
        }
        next = off + bytes;
        return gpaBase + off;
    }

    /** The host view of {@code [gpa, gpa+length)}; throws when it is not inside this RAM. */
    public MemorySegment segment(long gpa, long length) {
        if (!contains(gpa, length)) {
            throw new IndexOutOfBoundsException("[0x" + Long.toHexString(gpa) + ", +" + length
                    + ") is outside guest RAM [0x" + Long.toHexString(gpaBase) + ", +" + size + ")");
        }
        return host.asSlice(gpa - gpaBase, length);
    }

    public boolean contains(long gpa, long length) {
        return gpa >= gpaBase && length >= 0 && gpa - gpaBase <= size - length;
    }

    /**
     * A memory map with this RAM as its one region, for the in-process device. The region's user
     * address equals its guest-physical address (the in-process transport has no frontend
     * address space). The map holds a reference on this RAM until its last release.
     */
    public GuestMemory guestMemory() {
        retain();
        return GuestMemory.of(List.of(new MemoryRegion(gpaBase, size, gpaBase, host)), this::release);
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
            if (arena != null) {
                arena.close();
            } else {
                Sys.munmap(host.address(), size);
                Sys.close(fd);
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
        return "GuestRam[" + name + " gpa=0x" + Long.toHexString(gpaBase) + " size=" + size + " fd=" + fd + "]";
    }
}
