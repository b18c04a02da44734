package io.vblk.virtio.queue;

/**
 * Home thread: the owning IoThread of the queue it is given to. No locking.
 *
 * <p>A record of the chains a queue popped and has not given back, kept where it outlives the
 * device process (vhost-user's INFLIGHT_SHMFD buffer), so that a device restarted on the same
 * rings executes exactly the requests its predecessor took and never completed. One abstraction,
 * two layouts (vhost-user.rst "Inflight I/O tracking"): a record keeps one of them
 * ({@link #packedLayout}) and a queue refuses the other.
 *
 * <p>{@link SplitQueue} calls it at the three steps of the split protocol:
 * <ol>
 *   <li>{@link #popped} once a head is taken from the avail ring;</li>
 *   <li>{@link #publishing} before its used element is written;</li>
 *   <li>{@link #published} after the used index that covers it is stored.</li>
 * </ol>
 * and, at start, {@link #recover} with the used index found in the ring, then
 * {@link #nextResubmit} (heads) before any new pop.
 *
 * <p>{@link PackedQueue} calls {@link #poppedPacked}, {@link #publishingPacked} (before the used
 * descriptor's flags are stored) and {@link #publishedPacked} (after), and at start
 * {@link #recoverPacked}; {@link #nextResubmit} then returns record entries, whose descriptors the
 * queue reads back with {@link #entryDescs}, {@link #entryAddr}, {@link #entryTail} and
 * {@link #entryNext} (a packed ring's slots are overwritten by used descriptors, so the record
 * keeps its own copy of each chain). Each method is allocation-free.
 */
public interface InflightLog {
    /** No record: a queue without one resumes at the transport's avail index. */
    InflightLog NONE = new InflightLog() {
        @Override
        public int recover(int ringUsedIdx, int nextAvailIdx) {
            return nextAvailIdx;
        }

        @Override
        public int nextResubmit() {
            return -1;
        }

        @Override
        public void popped(int head) {
        }

        @Override
        public void publishing(int head) {
        }

        @Override
        public void published(int head, int usedIdx) {
        }
    };

    /** True for a record in the packed layout (QueueRegionPacked), false for the split one. */
    default boolean packedLayout() {
        return false;
    }

    /**
     * The queue starts on rings whose used index is {@code ringUsedIdx}; {@code nextAvailIdx} is
     * what the transport said (SET_VRING_BASE). Returns the avail index to pop from next — with a
     * record of requests in flight, the used index plus their count — and queues those requests
     * for {@link #nextResubmit}. Returns -1 when the record contradicts the rings (the queue then
     * refuses to start).
     */
    int recover(int ringUsedIdx, int nextAvailIdx);

    /** The next head (split) or record entry (packed) to execute again, oldest first, or -1 once none is left. */
    int nextResubmit();

    /** Head {@code head} was popped from the avail ring (a resubmitted head is not popped again). */
    void popped(int head);

    /** The used element for {@code head} is about to be written. */
    void publishing(int head);

    /** The used index {@code usedIdx} that covers {@code head}'s used element is stored. */
    void published(int head, int usedIdx);

    /**
     * Packed ring: the queue starts on {@code ring} of {@code size} slots; {@code transportState}
     * is the transport's resume point (avail index | wrap counter << 15 in bits 0..15, the used
     * side likewise in bits 16..31). Returns the resume point to use in the same form and queues
     * the buffers in flight for {@link #nextResubmit}; -1 when the record contradicts the ring.
     */
    default int recoverPacked(java.lang.foreign.MemorySegment ring, int size, int transportState) {
        return transportState;
    }

    /**
     * Packed ring: buffer {@code id} was popped, its {@code descs} descriptors in the ring's slots
     * from {@code firstSlot} (wrapping at the ring's end). False when the record has no room
     * (it contradicts the ring: the queue breaks).
     */
    default boolean poppedPacked(int id, java.lang.foreign.MemorySegment ring, int firstSlot, int descs) {
        return true;
    }

    /** Packed ring: buffer {@code id}'s used descriptor is about to be made used; the device's used state will be {@code usedStateAfter}. */
    default void publishingPacked(int id, int usedStateAfter) {
    }

    /** Packed ring: buffer {@code id}'s used descriptor flags are stored. */
    default void publishedPacked(int id) {
    }

    /** Packed record entry {@code entry} (a chain's head): its descriptor count. */
    default int entryDescs(int entry) {
        return 0;
    }

    /** The entry after {@code entry} in its chain. */
    default int entryNext(int entry) {
        return -1;
    }

    /** Entry {@code entry}'s descriptor address. */
    default long entryAddr(int entry) {
        return 0;
    }

    /** Entry {@code entry}'s descriptor as the ring's second 8 bytes (len | id << 32 | flags << 48, {@link PackedRingLayout#tail}). */
    default long entryTail(int entry) {
        return 0;
    }
}
