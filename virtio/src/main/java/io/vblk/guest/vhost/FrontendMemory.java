package io.vblk.guest.vhost;

import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.Sys;
import io.vblk.virtio.memory.GuestMemory;
import io.vblk.virtio.memory.MemoryRegion;
import io.vblk.virtio.vhost.wire.VhostUserCodec.MemRegion;
import io.vblk.virtio.vhost.wire.VhostUserMessageLayout;

import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * Home thread: the front-end's control context. No locking.
 *
 * <p>The front-end's view of guest memory (vhost-user.rst "Memory access"): the memfd-backed RAM it
 * may create itself, the regions last sent with SET_MEM_TABLE (each with the front-end's user
 * address, what SET_VRING_ADDR carries), and the translation of a ring's guest-physical address
 * into that user address.
 */
final class FrontendMemory implements AutoCloseable {
    private static final long PAGE = 4096;

    private int memfd = -1;
    private GuestMemory memory;
    /** The regions last sent with SET_MEM_TABLE: guest-physical to front-end address translation. */
    private List<MemRegion> table = List.of();
    /** The map handed over by {@link VhostUserFrontend#setMemory}, held while the back-end may use it. */
    private GuestMemory deviceMemory;

    /**
     * Creates {@code bytes} (rounded up to a page) of RAM in a memfd at guest-physical 0; its user
     * address is this process's mapping. Throws {@link IllegalStateException} naming the failing call.
     */
    void create(long bytes) {
        long size = (bytes + PAGE - 1) / PAGE * PAGE;
        int mfd = Sys.memfdCreate("vblk-guest-ram", Sys.MFD_CLOEXEC);
        if (mfd < 0) {
            throw new IllegalStateException("memfd_create failed: " + Errno.name(-mfd));
        }
        int r = Sys.ftruncate(mfd, size);
        if (r < 0) {
            Sys.close(mfd);
            throw new IllegalStateException("ftruncate to " + size + " failed: " + Errno.name(-r));
        }
        long addr = Sys.mmap(0, size, Sys.PROT_READ | Sys.PROT_WRITE, Sys.MAP_SHARED, mfd, 0);
        if (addr < 0 && addr > -4096) {
            Sys.close(mfd);
            throw new IllegalStateException("mmap of " + size + " bytes failed: " + Errno.name((int) -addr));
        }
        memfd = mfd;
        MemorySegment host = MemorySegment.ofAddress(addr).reinterpret(size);
        memory = GuestMemory.of(List.of(new MemoryRegion(0, size, addr, host)), () -> {
            Sys.munmap(addr, size);
            Sys.close(mfd);
        });
    }

    /** The RAM {@link #create} made, or null. */
    GuestMemory memory() {
        return memory;
    }

    /** Holds {@code m} (the created RAM) for the back-end and returns its one region, fd alongside. */
    MemRegion adopt(GuestMemory m) {
        m.retain();
        if (deviceMemory != null) {
            deviceMemory.release();
        }
        deviceMemory = m;
        MemoryRegion r = m.region(0);
        return new MemRegion(r.gpa(), r.size(), r.userAddr(), 0);
    }

    int memfd() {
        return memfd;
    }

    /**
     * Checks a table to send and returns copies of its fds (the message may leave after earlier
     * operations: the caller's fds may be closed by then); records the regions for translation.
     */
    int[] prepareTable(List<MemRegion> regions, int[] fds) {
        if (regions.size() != fds.length || regions.isEmpty() || regions.size() > VhostUserMessageLayout.MAX_MEM_TABLE_REGIONS) {
            throw new IllegalArgumentException(regions.size() + " regions with " + fds.length
                    + " fds; 1.." + VhostUserMessageLayout.MAX_MEM_TABLE_REGIONS + " regions, one fd each");
        }
        int[] copies = new int[fds.length];
        for (int i = 0; i < fds.length; i++) {
            copies[i] = Sys.dup(fds[i]);
            if (copies[i] < 0) {
                for (int j = 0; j < i; j++) {
                    Sys.close(copies[j]);
                }
                throw new IllegalStateException("dup of memory fd " + fds[i] + ": " + Errno.name(-copies[i]));
            }
        }
        table = List.copyOf(regions);
        return copies;
    }

    /** The front-end address of {@code [gpa, gpa+len)} through the current memory table. */
    long uaddr(int q, String what, long gpa, long len) {
        for (MemRegion r : table) {
            if (gpa >= r.gpa() && len >= 0 && gpa - r.gpa() <= r.size() - len) {
                return r.uaddr() + (gpa - r.gpa());
            }
        }
        throw new IllegalStateException("queue " + q + ": " + what + " at guest address 0x" + Long.toHexString(gpa)
                + " is outside the memory table sent to the back-end");
    }

    /** Drops the held map and the created RAM (unmapped once its last user releases it). */
    @Override
    public void close() {
        if (deviceMemory != null) {
            deviceMemory.release();
            deviceMemory = null;
        }
        if (memory != null) {
            memory.release();
            memory = null;
        }
    }
}
