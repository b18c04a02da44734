package io.vblk.virtio.memory;

import java.lang.foreign.MemorySegment;

/**
 * Any thread: immutable.
 *
 * <p>One contiguous range of guest-physical memory and where it is mapped in this process.
 *
 * @param gpa       guest-physical address of the first byte
 * @param size      length in bytes
 * @param userAddr  the frontend's virtual address of the first byte (vhost-user ring addresses
 *                  are in this space; equal to {@code gpa} for the in-process harness)
 * @param host      the mapping in this process, exactly {@code size} bytes long
 */
public record MemoryRegion(long gpa, long size, long userAddr, MemorySegment host) {
    public MemoryRegion {
        if (size <= 0) {
            throw new IllegalArgumentException("memory region size must be positive, got " + size);
        }
        if (gpa < 0 || gpa + size < gpa) {
            throw new IllegalArgumentException("memory region [" + Long.toHexString(gpa) + ", +"
                    + Long.toHexString(size) + ") wraps the address space");
        }
        if (host.byteSize() != size) {
            throw new IllegalArgumentException("host mapping is " + host.byteSize() + " bytes, region is " + size);
        }
    }

    /** True when {@code [addr, addr+len)} of guest-physical space lies inside this region. */
    public boolean containsGpa(long addr, long len) {
        return addr >= gpa && len >= 0 && addr - gpa <= size - len;
    }

    /** True when {@code [addr, addr+len)} of the frontend's virtual space lies inside this region. */
    public boolean containsUser(long addr, long len) {
        return addr >= userAddr && len >= 0 && addr - userAddr <= size - len;
    }

    public boolean overlapsGpa(MemoryRegion o) {
        return gpa < o.gpa + o.size && o.gpa < gpa + size;
    }
}
