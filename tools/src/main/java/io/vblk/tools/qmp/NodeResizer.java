package io.vblk.tools.qmp;

import io.vblk.drivers.node.BlockNode;

import java.util.concurrent.CompletableFuture;

/**
 * Home thread: the main loop (the nodes' home).
 *
 * <p>The seam block_resize calls to change a node's size: the block layer's node-resize operation,
 * which grows or shrinks the image and tells every export on the node (vhost-user-blk sends
 * CONFIG_CHANGE_MSG to its front end). The future completes on the main loop, or fails with a
 * {@link QmpError}; the monitor never waits for it.
 */
@FunctionalInterface
public interface NodeResizer {
    CompletableFuture<Void> resize(BlockNode node, long size);

    /**
     * The resizer of a build whose drivers keep the size fixed at open: QEMU's answer for a driver
     * without {@code bdrv_co_truncate}.
     */
    NodeResizer FIXED_SIZE = (node, size) -> size == node.driver().length()
            ? CompletableFuture.completedFuture(null)
            : CompletableFuture.failedFuture(QmpError.generic("Image format driver does not support resize"));
}
