package io.vblk.virtio.vhost.wire;

import java.lang.foreign.MemorySegment;

import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.CONFIG_HEADER_BYTES;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.CONFIG_SIZE;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.MAX_CONFIG_BYTES;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.MAX_MEM_TABLE_REGIONS;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.MEM_TABLE_MIN_BYTES;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.MEM_TABLE_NREGIONS;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.REGION_BYTES;
import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.getInt;

/**
 * Any thread: stateless.
 *
 * <p>The payload sizes that depend on a count inside the payload: a column of the table in
 * {@link VhostUserRequest}, checked by {@link VhostUserFramer} once the payload is complete (the
 * header's size is already within the row's bounds).
 */
public enum PayloadRule {
    /** The row's size bounds say it all. */
    FIXED {
        @Override
        String check(String what, MemorySegment payload, int size) {
            return null;
        }
    },
    /**
     * SET_MEM_TABLE ("memory regions description"): {@code num regions} of at most 8
     * (VHOST_MEMORY_BASELINE_NREGIONS) and room for that many 32-byte regions; QEMU sends exactly
     * {@code 8 + 32 * nregions} bytes, more (up to the full 8-region struct) is tolerated.
     */
    MEM_TABLE {
        @Override
        String check(String what, MemorySegment payload, int size) {
            int n = getInt(payload, MEM_TABLE_NREGIONS);
            if (n < 0 || n > MAX_MEM_TABLE_REGIONS) {
                return what + ": " + Integer.toUnsignedString(n) + " regions, at most " + MAX_MEM_TABLE_REGIONS
                        + " fit in one table";
            }
            long need = MEM_TABLE_MIN_BYTES + (long) REGION_BYTES * n;
            return size >= need ? null : what + ": payload of " + size + " bytes cannot hold " + n + " regions (" + need
                    + " bytes)";
        }
    },
    /**
     * GET_CONFIG / SET_CONFIG ("virtio device config space"): {@code size} at most 256
     * (VHOST_USER_MAX_CONFIG_SIZE) and exactly that many bytes after the 12-byte header (GET_CONFIG:
     * "payload size MUST match"). A reply of 0 bytes is the back-end's error answer ("vhost-user
     * back-end uses zero length of payload to indicate an error").
     */
    CONFIG {
        @Override
        String check(String what, MemorySegment payload, int size) {
            if (size == 0) {
                return null; // only reachable by a reply: a request's row needs at least the 12-byte header
            }
            if (size < CONFIG_HEADER_BYTES) {
                // A reply's row allows any size; a non-empty one still starts with the header.
                return what + ": payload of " + size + " bytes is shorter than the " + CONFIG_HEADER_BYTES
                        + "-byte config header";
            }
            int n = getInt(payload, CONFIG_SIZE);
            if (n < 0 || n > MAX_CONFIG_BYTES) {
                return what + ": config size " + Integer.toUnsignedString(n) + ", at most " + MAX_CONFIG_BYTES;
            }
            return size == CONFIG_HEADER_BYTES + n ? null : what + ": payload of " + size + " bytes for a config size of "
                    + n + " (expected " + (CONFIG_HEADER_BYTES + n) + ")";
        }
    };

    /** Null when {@code size} payload bytes suit the counts inside them, else the reason. */
    abstract String check(String what, MemorySegment payload, int size);
}
