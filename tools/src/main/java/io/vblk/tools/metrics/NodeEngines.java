package io.vblk.tools.metrics;

import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.node.BlockNode;

import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * Any thread: the listener runs on each channel's IoThread when it opens or closes, under the
 * binder's lock; nothing here runs on the request path.
 *
 * <p>Binds the I/O engine of every channel opened on a block node when it opens, and unbinds it
 * before the channel closes. An engine (Linux AIO, io_uring, the synchronous null device's queue)
 * comes into being with a context's first channel, which a device opens when its queue first starts
 * — long after start-up, when the daemon binds its meters — so its meters (io_submit and
 * io_uring_enter calls, batch sizes, and the seed-000 guard's cap hits and depth) must be bound then.
 */
final class NodeEngines {
    private NodeEngines() {
    }

    static Binding bind(VblkMetrics metrics, BlockNode node, String export) {
        Map<BlockChannel, Binding> open = new IdentityHashMap<>();
        BlockNode.ChannelListener l = new BlockNode.ChannelListener() {
            @Override
            public void opened(BlockChannel ch) {
                synchronized (metrics) {
                    Binding e = metrics.open("engine of " + export + " " + ch.context().name());
                    metrics.bindEngineOf(e, ch);
                    open.put(ch, metrics.done(e));
                }
            }

            @Override
            public void closing(BlockChannel ch) {
                Binding e;
                synchronized (metrics) {
                    e = open.remove(ch);
                }
                if (e != null) {
                    e.close();
                }
            }
        };
        node.addChannelListener(l);
        Binding b = metrics.open("engines of " + export);
        b.closeables.add(() -> {
            node.removeChannelListener(l);
            List<Binding> left;
            synchronized (metrics) {
                left = List.copyOf(open.values());
                open.clear();
            }
            for (Binding e : left) {
                e.close();
            }
        });
        return metrics.done(b);
    }
}
