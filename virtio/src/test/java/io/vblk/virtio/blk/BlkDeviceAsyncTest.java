package io.vblk.virtio.blk;

/**
 * Every test of {@link BlkDeviceTest} again, with the RAM driver completing each request later:
 * from a bottom half on the next loop iteration, newest first. The device assumes neither that a
 * request completes inside submit nor that requests complete in order.
 */
class BlkDeviceAsyncTest extends BlkDeviceTest {
    @Override
    MemDriver.Mode completion() {
        return MemDriver.Mode.ASYNC_REVERSED;
    }
}
