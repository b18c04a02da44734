package io.vblk.virtio.vhost.server;

import io.vblk.virtio.memory.GuestMemory;
import io.vblk.virtio.memory.MemoryRegion;
import io.vblk.virtio.vhost.wire.VhostUserCodec.MemRegion;
import io.vblk.virtio.vhost.wire.VhostUserProtocolException;

import java.util.ArrayList;
import java.util.List;

/**
 * Home thread: the connection's. The {@link MappedRegion}s it hands to a {@link GuestMemory}
 * are released from whichever thread drops that map last.
 *
 * <p>The regions a front-end has given (vhost-user "Memory access"), each mapped once and shared by
 * successive guest memory maps: ADD_MEM_REG adds one region without remapping the others.
 */
final class MemoryTable {
    private final List<MappedRegion> regions;

    private MemoryTable(List<MappedRegion> regions) {
        this.regions = regions;
    }

    static MemoryTable empty() {
        return new MemoryTable(List.of());
    }

    /** A table owning {@code regions} (their creation references move into it). */
    static MemoryTable of(List<MappedRegion> regions) {
        return new MemoryTable(List.copyOf(regions));
    }

    int size() {
        return regions.size();
    }

    List<MappedRegion> regions() {
        return regions;
    }

    /** This table plus {@code added} (its reference moves in); the shared regions gain a reference. */
    MemoryTable plus(MappedRegion added) {
        List<MappedRegion> l = new ArrayList<>(regions.size() + 1);
        for (MappedRegion r : regions) {
            l.add(r.retain());
        }
        l.add(added);
        return new MemoryTable(l);
    }

    /** This table without the regions matching {@code d}, or null when none matches. */
    MemoryTable minus(MemRegion d) {
        List<MappedRegion> l = new ArrayList<>(regions.size());
        boolean found = false;
        for (MappedRegion r : regions) {
            if (r.matches(d)) {
                found = true;
            } else {
                l.add(r);
            }
        }
        if (!found) {
            return null;
        }
        for (MappedRegion r : l) {
            r.retain();
        }
        return new MemoryTable(l);
    }

    /**
     * A guest memory map over these regions; it holds a reference on each region until its last
     * user releases it. Overlapping guest ranges are a protocol error (nothing is retained then).
     */
    GuestMemory toGuestMemory() throws VhostUserProtocolException {
        List<MemoryRegion> mrs = new ArrayList<>(regions.size());
        for (MappedRegion r : regions) {
            mrs.add(r.asMemoryRegion());
        }
        GuestMemory g;
        try {
            g = GuestMemory.of(mrs, this::releaseCopy);
        } catch (IllegalArgumentException e) {
            throw new VhostUserProtocolException(e.getMessage());
        }
        for (MappedRegion r : regions) {
            r.retain();
        }
        return g;
    }

    private void releaseCopy() {
        for (MappedRegion r : regions) {
            r.release();
        }
    }

    /** Drops this table's own references. */
    void release() {
        for (MappedRegion r : regions) {
            r.release();
        }
    }
}
