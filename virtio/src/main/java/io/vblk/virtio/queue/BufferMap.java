package io.vblk.virtio.queue;

import io.vblk.virtio.memory.GuestMemory;
import io.vblk.virtio.memory.MemoryRegion;

/**
 * Home thread: the owning IoThread of the queue that holds it. No locking.
 *
 * <p>Translates a descriptor's guest buffer into host segments of a {@link DescriptorChain}, for
 * both ring layouts ({@link SplitQueue}, {@link PackedQueue}): one place for the rules every
 * buffer obeys whatever ring it came from — a chain maps at most 4 GiB (the 32-bit used length),
 * at most {@link DescriptorChain#MAX_SEGMENTS} segments, and only guest memory; a buffer that
 * crosses into an adjacent region becomes two segments.
 *
 * <p>The guest's regions are fixed while the queue is started ({@link #attach}); the region the
 * last buffer was found in is tried first, so a guest with one or two RAM regions costs one range
 * check per buffer instead of a scan.
 */
final class BufferMap {
    /** 2.7.8 / 2.8.x: the used length is 32 bits, so a chain longer than 4 GiB cannot be reported. */
    static final long MAX_CHAIN_BYTES = 0x1_0000_0000L;

    private GuestMemory memory;
    private MemoryRegion[] regions;
    private int lastRegion;

    void attach(GuestMemory m) {
        this.memory = m;
        this.regions = m.regions().toArray(new MemoryRegion[0]);
        this.lastRegion = 0;
    }

    void detach() {
        memory = null;
        regions = null;
    }

    /**
     * Adds buffer {@code [addr, addr + len)} to {@code chain}. Returns null when mapped, otherwise
     * the rule it breaks (the chain is then partly filled; the queue breaks).
     */
    QueueViolation map(DescriptorChain chain, long addr, long len, boolean writable) {
        if (chain.totalBytes() + len > MAX_CHAIN_BYTES) {
            return QueueViolation.CHAIN_TOO_LARGE;
        }
        MemoryRegion last = regions[lastRegion];
        long lastOff = addr - last.gpa();
        if (lastOff >= 0 && lastOff < last.size() && len <= last.size() - lastOff) {
            return chain.add(lastRegion, lastOff, last.host().address() + lastOff, len, writable)
                    ? null : QueueViolation.TOO_MANY_SEGMENTS;
        }
        long gpa = addr;
        long left = len;
        while (left > 0) {
            int r = memory.regionIndex(gpa, 1);
            if (r < 0) {
                return QueueViolation.ADDRESS_OUT_OF_RANGE;
            }
            MemoryRegion region = memory.region(r);
            lastRegion = r;
            long off = gpa - region.gpa();
            long n = Math.min(left, region.size() - off);
            if (!chain.add(r, off, region.host().address() + off, n, writable)) {
                return QueueViolation.TOO_MANY_SEGMENTS;
            }
            gpa += n;
            left -= n;
        }
        return null;
    }

    /** The detail of a violation {@link #map} returned, for the descriptor named by {@code where}. */
    static String detail(QueueViolation v, String where, long addr, long len) {
        return switch (v) {
            case TOO_MANY_SEGMENTS -> where + " more than " + DescriptorChain.MAX_SEGMENTS;
            case ADDRESS_OUT_OF_RANGE -> String.format("%s buffer [0x%x, +%d)", where, addr, len);
            default -> where;
        };
    }
}
