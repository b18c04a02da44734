package io.vblk.virtio.queue;

import io.vblk.guest.GuestRam;
import io.vblk.virtio.blk.BlkDevice;

/**
 * Any thread: never instantiated.
 *
 * <p>A class that breaks two import rules on purpose (the queue importing the block device, the
 * server importing the guest side), so that {@code ArchitectureTest} shows the rules catch it. It
 * lives in the test tree only.
 */
public final class ForbiddenImportFixture {
    BlkDevice device;
    GuestRam ram;

    private ForbiddenImportFixture() {
    }
}
