package io.vblk.virtio.memory;

import java.lang.foreign.MemorySegment;

/**
 * Any thread: an instance is immutable once published; a new map replaces it whole.
 *
 * <p>Guest-physical memory as the device reads it: translation of a guest address range to a
 * host {@link MemorySegment}, bounds-checked.
 */
public interface GuestMemoryView {
    /**
     * Returns the host segment for {@code [gpa, gpa+length)}, or null when any byte of the range
     * is outside guest memory or the range crosses a region boundary.
     */
    MemorySegment translate(long gpa, long length);
}
