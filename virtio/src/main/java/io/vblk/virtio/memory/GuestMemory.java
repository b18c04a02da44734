package io.vblk.virtio.memory;


import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Any thread: immutable once built. A map is reference-counted so that the mappings behind it
 * are released (by the {@code onLastRelease} action) only when no queue or request uses it.
 *
 * <p>A guest memory map: a sorted, non-overlapping set of {@link MemoryRegion}s. Every guest address
 * and length is bounds-checked here before the device touches host memory.
 */
public final class GuestMemory implements GuestMemoryView {
    private final MemoryRegion[] regions;
    private final AtomicInteger refs = new AtomicInteger(1);
    private final Runnable onLastRelease;

    private GuestMemory(MemoryRegion[] regions, Runnable onLastRelease) {
        this.regions = regions;
        this.onLastRelease = onLastRelease;
    }

    /**
     * Builds a map. Throws {@link IllegalArgumentException} naming the two regions when any pair
     * overlaps in guest-physical space (vhost-user: "overlapping regions" is a protocol error).
     *
     * @param onLastRelease run once when the last reference is released (unmap, close fds)
     */
    public static GuestMemory of(List<MemoryRegion> regions, Runnable onLastRelease) {
        List<MemoryRegion> sorted = new ArrayList<>(regions);
        sorted.sort(Comparator.comparingLong(MemoryRegion::gpa));
        for (int i = 1; i < sorted.size(); i++) {
            MemoryRegion a = sorted.get(i - 1);
            MemoryRegion b = sorted.get(i);
            if (a.overlapsGpa(b)) {
                throw new IllegalArgumentException("guest memory regions overlap: [0x" + Long.toHexString(a.gpa())
                        + ", +0x" + Long.toHexString(a.size()) + ") and [0x" + Long.toHexString(b.gpa())
                        + ", +0x" + Long.toHexString(b.size()) + ")");
            }
        }
        return new GuestMemory(sorted.toArray(new MemoryRegion[0]), onLastRelease);
    }

    public static GuestMemory of(List<MemoryRegion> regions) {
        return of(regions, () -> { });
    }

    public int regionCount() {
        return regions.length;
    }

    public MemoryRegion region(int index) {
        return regions[index];
    }

    public List<MemoryRegion> regions() {
        return List.of(regions);
    }

    /**
     * Index of the region holding all of {@code [gpa, gpa+length)}, or -1. Allocation-free; the
     * request path uses this with {@link #region(int)} to read at an offset.
     */
    public int regionIndex(long gpa, long length) {
        // Few regions (QEMU uses 1-8 for normal guests): a linear scan beats a search.
        for (int i = 0; i < regions.length; i++) {
            if (regions[i].containsGpa(gpa, length)) {
                return i;
            }
        }
        return -1;
    }

    /** Host address of {@code gpa} when all of {@code [gpa, gpa+length)} is guest memory, else 0. */
    public long hostAddress(long gpa, long length) {
        int i = regionIndex(gpa, length);
        if (i < 0) {
            return 0;
        }
        MemoryRegion r = regions[i];
        return r.host().address() + (gpa - r.gpa());
    }

    @Override
    public MemorySegment translate(long gpa, long length) {
        int i = regionIndex(gpa, length);
        if (i < 0) {
            return null;
        }
        MemoryRegion r = regions[i];
        return r.host().asSlice(gpa - r.gpa(), length);
    }

    /**
     * Translates a frontend virtual address (vhost-user SET_VRING_ADDR) to guest-physical, or -1
     * when {@code [uva, uva+length)} is not inside one region.
     */
    public long userToGpa(long uva, long length) {
        for (MemoryRegion r : regions) {
            if (r.containsUser(uva, length)) {
                return r.gpa() + (uva - r.userAddr());
            }
        }
        return -1;
    }

    /** Takes a reference; fails when the map was already released for good. */
    public GuestMemory retain() {
        int n;
        do {
            n = refs.get();
            if (n <= 0) {
                throw new IllegalStateException("guest memory map already released");
            }
        } while (!refs.compareAndSet(n, n + 1));
        return this;
    }

    /** Drops a reference; the last one runs the release action. */
    public void release() {
        int n = refs.decrementAndGet();
        if (n == 0) {
            onLastRelease.run();
        } else if (n < 0) {
            throw new IllegalStateException("guest memory map released more often than retained");
        }
    }
}
