package io.vblk.virtio.blk;

/**
 * Every test of {@link PackedBlkDeviceTest} again, with the RAM driver completing each request later,
 * newest first: on a packed ring, out-of-order completion writes used descriptors in completion order
 * and both sides skip by each buffer's own descriptor count (virtio 1.2 section 2.8.6).
 */
class PackedBlkDeviceAsyncTest extends PackedBlkDeviceTest {
    @Override
    MemDriver.Mode completion() {
        return MemDriver.Mode.ASYNC_REVERSED;
    }
}
