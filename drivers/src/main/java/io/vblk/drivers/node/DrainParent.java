package io.vblk.drivers.node;

/**
 * Home thread: the node's (the main loop); each method is called there.
 *
 * <p>A user of a {@link BlockNode} that takes requests from outside — a device's virtqueues, an
 * export — and must stop taking them while the node is drained, as QEMU's {@code BdrvChildClass}
 * {@code drained_begin}/{@code drained_end} (for a device: {@code BlockDevOps}). The node calls
 * {@link #drainedBegin} on its outermost begin and {@link #drainedEnd} on its outermost end, each
 * exactly once per section and always in that order.
 */
public interface DrainParent {
    /** For logs and error messages ("device vda"). */
    String drainName();

    /**
     * Stop taking new requests for the node. The parent hands the stop over to every context it
     * submits on and runs {@code stopped} once each of them has stopped (from any thread; the node
     * hands it back to its home). From that point on the parent submits nothing to the node until
     * {@link #drainedEnd}; requests it submitted before keep running and are what the node waits for.
     */
    void drainedBegin(Runnable stopped);

    /**
     * Resume taking requests. The parent must re-check its sources as if each had just signalled
     * (re-read every virtqueue's avail ring), so that nothing that arrived during the section is
     * lost (seed 003).
     */
    void drainedEnd();

    /**
     * The node's size changed to {@code newLength} bytes ({@link BlockNode#resize}; QEMU's
     * {@code BlockDevOps.resize_cb}): a device updates its capacity and tells its driver. Called
     * inside the resize's drained section, before its end, so every request taken after the end
     * sees the new size. Parents with nothing to update (an export of a fixed size) ignore it.
     */
    default void resized(long newLength) {
    }

    /** Whether {@link #replaceNode} is implemented (a job that pivots checks before it starts). */
    default boolean canReplaceNode() {
        return false;
    }

    /**
     * Move from node {@code from} to node {@code to} ({@link BlockNode#replaceParents}): re-open on
     * {@code to} whatever was open on {@code from} (a device's channels, each on its IoThread) and
     * submit only there from now on; run {@code done} (from any thread) once that is so. Both nodes
     * are drained, the parent is attached to both, and nothing of it is in flight on {@code from}.
     */
    default void replaceNode(BlockNode from, BlockNode to, Runnable done) {
        throw new UnsupportedOperationException(drainName() + " cannot move to another node");
    }
}
