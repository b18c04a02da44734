package io.vblk.virtio.device;

import io.vblk.aio.AioContext;

import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;

/**
 * Any thread: immutable.
 *
 * <p>Which event loop each queue of a device lives on, as QEMU's {@code iothread-vq-mapping}: either
 * round-robin over a list of IoThreads, or one context named per queue. Every queue's state, its
 * kick handler and its driver channel live on its context (the queue's home thread).
 */
public final class IoThreadMapping {
    private final List<AioContext> contexts;
    private final boolean roundRobin;

    private IoThreadMapping(List<AioContext> contexts, boolean roundRobin) {
        this.contexts = List.copyOf(contexts);
        this.roundRobin = roundRobin;
    }

    /** Queue {@code i} lives on {@code contexts.get(i % contexts.size())}. */
    public static IoThreadMapping roundRobin(List<AioContext> contexts) {
        if (contexts.isEmpty()) {
            throw new IllegalArgumentException("iothread mapping needs at least one IoThread");
        }
        return new IoThreadMapping(contexts, true);
    }

    /** Every queue on one context. */
    public static IoThreadMapping single(AioContext ctx) {
        return roundRobin(List.of(ctx));
    }

    /** Queue {@code i} lives on {@code perQueue.get(i)}; the list names every queue. */
    public static IoThreadMapping explicit(List<AioContext> perQueue) {
        if (perQueue.isEmpty()) {
            throw new IllegalArgumentException("explicit iothread mapping names no queue");
        }
        return new IoThreadMapping(perQueue, false);
    }

    /**
     * The context of queue {@code queue} of {@code numQueues}. Throws, naming the option, when an
     * explicit mapping does not name exactly {@code numQueues} queues.
     */
    public AioContext contextOf(int queue, int numQueues) {
        check(numQueues);
        if (queue < 0 || queue >= numQueues) {
            throw new IndexOutOfBoundsException("queue " + queue + " of " + numQueues);
        }
        return roundRobin ? contexts.get(queue % contexts.size()) : contexts.get(queue);
    }

    /** Validates the mapping for a device with {@code numQueues} queues. */
    public void check(int numQueues) {
        if (!roundRobin && contexts.size() != numQueues) {
            throw new IllegalArgumentException("iothread-vq-mapping names " + contexts.size()
                    + " queues but the device has num-queues=" + numQueues + "; name each queue exactly once");
        }
    }

    /** The distinct contexts queues live on, in first-use order. */
    public List<AioContext> distinctContexts(int numQueues) {
        Set<AioContext> seen = Collections.newSetFromMap(new IdentityHashMap<>());
        List<AioContext> out = new ArrayList<>();
        for (int q = 0; q < numQueues; q++) {
            AioContext c = contextOf(q, numQueues);
            if (seen.add(c)) {
                out.add(c);
            }
        }
        return out;
    }

    public boolean isRoundRobin() {
        return roundRobin;
    }

    @Override
    public String toString() {
        List<String> names = new ArrayList<>();
        for (AioContext c : contexts) {
            names.add(c.name());
        }
        return (roundRobin ? "round-robin" : "explicit") + names;
    }
}
