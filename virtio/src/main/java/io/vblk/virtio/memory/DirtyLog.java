package io.vblk.virtio.memory;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;

/**
 * Any thread: immutable; a mark is an atomic OR into shared memory, so the IoThreads of every
 * queue mark the same log at once, and the front-end reads and clears it meanwhile.
 *
 * <p>The dirty log of live migration (vhost-user.rst "Live migration", QEMU's {@code vhost_log}):
 * a bitmap with one bit per 4 KiB page of guest-physical memory, shared with the front-end
 * (SET_LOG_BASE with LOG_SHMFD). While the front-end migrates, every guest page the device writes
 * is marked here after the write, so the front-end sends it (again):
 * <pre>
 *   page  = gpa >>> 12                   (VHOST_LOG_PAGE = 0x1000)
 *   word  = page >>> 6  (a u64, native little-endian: vhost_log_chunk_t)
 *   bit   = page &amp; 63  (= bit page % 8 of byte page / 8, libvhost-user's reading)
 * </pre>
 * A mark reads the word first and ORs only when the bit is clear: the pages a guest writes again and
 * again (the used ring, a status byte's page) cost one load after the first time.
 *
 * <p>One object per queue: {@link #forUsedRing} gives a queue its own used-ring log address
 * (SET_VRING_ADDR's {@code log_guest_addr} with {@code VHOST_VRING_F_LOG}); the bitmap and the
 * memory map behind it are shared. The owner keeps the bitmap mapped until no queue holds a log
 * on it.
 */
public final class DirtyLog {
    /** VHOST_LOG_PAGE: the guest-physical bytes one bit stands for (QEMU hw/virtio/vhost.c). */
    public static final long PAGE_BYTES = 0x1000;
    private static final int PAGE_SHIFT = 12;
    /** vhost_log_chunk_t is a u64; the bitmap is read and written in these units. */
    private static final VarHandle WORD = ValueLayout.JAVA_LONG.varHandle();

    private final MemorySegment bitmap;
    private final MemoryRegion[] regions;
    private final long usedLogAddr;

    private DirtyLog(MemorySegment bitmap, MemoryRegion[] regions, long usedLogAddr) {
        this.bitmap = bitmap;
        this.regions = regions;
        this.usedLogAddr = usedLogAddr;
    }

    /**
     * A log over {@code bitmap} for the guest memory {@code memory}. Throws
     * {@link IllegalArgumentException} when the bitmap is not 8-byte aligned or does not cover every
     * page of {@code memory} (the front-end sized it too small: a mark would fall outside).
     */
    public static DirtyLog of(MemorySegment bitmap, GuestMemory memory) {
        if ((bitmap.address() & 7) != 0) {
            throw new IllegalArgumentException("dirty log at 0x" + Long.toHexString(bitmap.address())
                    + " is not 8-byte aligned");
        }
        long need = bytesFor(memory);
        if (bitmap.byteSize() < need) {
            throw new IllegalArgumentException("dirty log of " + bitmap.byteSize() + " bytes does not cover guest memory"
                    + " (it needs " + need + " bytes for one bit per 4 KiB page)");
        }
        return new DirtyLog(bitmap, memory.regions().toArray(new MemoryRegion[0]), -1);
    }

    /**
     * The bitmap bytes that cover every page of {@code memory}: whole u64 words up to the last
     * page of the highest region (QEMU's {@code vhost_get_log_size}).
     */
    public static long bytesFor(GuestMemory memory) {
        long end = 0;
        for (MemoryRegion r : memory.regions()) {
            end = Math.max(end, r.gpa() + r.size());
        }
        long pages = (end + PAGE_BYTES - 1) >>> PAGE_SHIFT;
        return ((pages + 63) >>> 6) * 8;
    }

    /**
     * The same log for a queue whose used-ring writes are logged at {@code logGuestAddr} (the
     * ring's guest-physical address as SET_VRING_ADDR gave it); -1: the used ring is not logged.
     */
    public DirtyLog forUsedRing(long logGuestAddr) {
        return new DirtyLog(bitmap, regions, logGuestAddr);
    }

    /** Whether used-ring writes are logged (VHOST_VRING_F_LOG). */
    public boolean logsUsedRing() {
        return usedLogAddr >= 0;
    }

    /** Marks {@code len} bytes written at offset {@code offset} of the used ring (no-op without F_LOG). */
    public void markUsed(long offset, long len) {
        if (usedLogAddr >= 0) {
            markGpa(usedLogAddr + offset, len);
        }
    }

    /** Marks every page of {@code [gpa, gpa + len)}. Pages beyond the bitmap are ignored (checked at {@link #of}). */
    public void markGpa(long gpa, long len) {
        if (len <= 0) {
            return;
        }
        long last = (gpa + len - 1) >>> PAGE_SHIFT;
        for (long page = gpa >>> PAGE_SHIFT; page <= last; page++) {
            long off = (page >>> 6) << 3;
            if (off > bitmap.byteSize() - 8) {
                return;
            }
            long mask = 1L << (page & 63);
            // Plain read first: the front-end only ever clears bits (after a sync), so a set bit
            // means the page will be sent; a clear one needs the atomic OR, which never loses
            // another thread's bit in the same word.
            if (((long) WORD.get(bitmap, off) & mask) == 0) {
                long ignored = (long) WORD.getAndBitwiseOr(bitmap, off, mask);
            }
        }
    }

    /**
     * Marks the pages of {@code len} bytes at host address {@code address} inside the guest memory
     * mapping (an iovec of a request); a range in no region is ignored.
     */
    public void markHost(long address, long len) {
        long at = address;
        long left = len;
        while (left > 0) {
            MemoryRegion r = regionOfHost(at);
            if (r == null) {
                return;
            }
            long off = at - r.host().address();
            long n = Math.min(left, r.size() - off);
            markGpa(r.gpa() + off, n);
            at += n;
            left -= n;
        }
    }

    /** True when the page holding {@code gpa} is marked (tests, diagnostics). */
    public boolean isDirty(long gpa) {
        long page = gpa >>> PAGE_SHIFT;
        long off = (page >>> 6) << 3;
        return off <= bitmap.byteSize() - 8 && ((long) WORD.getVolatile(bitmap, off) & (1L << (page & 63))) != 0;
    }

    private MemoryRegion regionOfHost(long address) {
        for (MemoryRegion r : regions) {
            long off = address - r.host().address();
            if (off >= 0 && off < r.size()) {
                return r;
            }
        }
        return null;
    }

    @Override
    public String toString() {
        return "DirtyLog[" + bitmap.byteSize() + " bytes" + (usedLogAddr >= 0 ? " used ring at 0x"
                + Long.toHexString(usedLogAddr) : "") + "]";
    }
}
