package io.vblk.virtio.blk;

import io.vblk.aio.AioContext;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.node.BlockNode;
import io.vblk.drivers.node.DrainParent;

import java.util.function.Consumer;
import java.util.function.LongConsumer;

/**
 * Home thread: the device's control context (the main loop, its node's home). No locking: each
 * queue's part is handed over to the queue's IoThread with {@code runOn}.
 *
 * <p>A virtio-blk device as a parent of its block node, as QEMU's {@code virtio_blk_drained_begin}
 * / {@code _end}: the node's drained section stops every queue of the device from taking guest
 * requests, each on its own IoThread, and its end makes every queue re-check its avail ring.
 *
 * <p>Ordering: {@link #drainedBegin} reports "stopped" only after each queue's IoThread has run the
 * stop (the report comes back through the control context), so the node counts in-flight requests
 * only once no queue can submit any more. A queue's begin and end run on its own thread in the
 * order the node calls them: both are {@code runOn} tasks from this one thread to that context, and
 * a context runs the tasks one thread hands it in order.
 */
final class DeviceDrain implements DrainParent {
    private final String name;
    private final AioContext control;
    private final BlkQueue[] queues;
    private final ContextChannel[] channels;
    private final LongConsumer onResized;
    private final Consumer<BlockNode> onMoved;

    /**
     * {@code onResized} hears the node's new size in bytes, {@code onMoved} the node the device
     * moved to, on the control context.
     */
    DeviceDrain(String name, AioContext control, BlkQueue[] queues, ContextChannel[] channels,
                LongConsumer onResized, Consumer<BlockNode> onMoved) {
        this.name = name;
        this.control = control;
        this.queues = queues;
        this.channels = channels;
        this.onResized = onResized;
        this.onMoved = onMoved;
    }

    @Override
    public boolean canReplaceNode() {
        return true;
    }

    /**
     * A mirror's pivot moves the device to {@code to} (both nodes drained, the queues stopped):
     * each context re-opens its channel on {@code to} and its queues submit there from now on,
     * each on its own IoThread; {@code done} runs once every context has moved.
     */
    @Override
    public void replaceNode(BlockNode from, BlockNode to, Runnable done) {
        control.assertHome();
        onMoved.accept(to);
        int[] left = {channels.length + 1};
        Runnable oneMoved = () -> {
            if (--left[0] == 0) {
                done.run();
            }
        };
        for (ContextChannel ch : channels) {
            ch.ctx.runOn(() -> {
                try {
                    BlockChannel moved = ch.moveTo(to);
                    for (BlkQueue q : queues) {
                        if (q.ctx == ch.ctx) {
                            q.channelMoved(moved);
                        }
                    }
                } finally {
                    control.runOn(oneMoved);
                }
            });
        }
        oneMoved.run();
    }

    /**
     * The node was resized (called inside its drained section): the device takes the new capacity,
     * then each queue's parser does, on its own thread, before the section's end reaches it.
     */
    @Override
    public void resized(long newLength) {
        control.assertHome();
        onResized.accept(newLength);
        long sectors = newLength >> BlkRequestType.SECTOR_SHIFT;
        for (BlkQueue q : queues) {
            q.ctx.runOn(() -> q.resized(sectors));
        }
    }

    @Override
    public String drainName() {
        return "device " + name;
    }

    @Override
    public void drainedBegin(Runnable stopped) {
        control.assertHome();
        int[] left = {queues.length};
        Runnable oneStopped = () -> {
            if (--left[0] == 0) {
                stopped.run();
            }
        };
        if (queues.length == 0) {
            stopped.run();
        }
        for (BlkQueue q : queues) {
            q.ctx.runOn(() -> {
                try {
                    q.drainedBegin();
                } finally {
                    control.runOn(oneStopped);
                }
            });
        }
    }

    @Override
    public void drainedEnd() {
        control.assertHome();
        for (BlkQueue q : queues) {
            q.ctx.runOn(q::drainedEnd);
        }
    }

    @Override
    public String toString() {
        return "DeviceDrain[" + name + "]";
    }
}
