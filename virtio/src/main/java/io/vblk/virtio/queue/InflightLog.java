package io.vblk.virtio.queue;

/**
 * Home thread: the owning IoThread of the queue it is given to. No locking.
 *
 * <p>A record of the chains a split queue popped and has not given back, kept where it outlives
 * the device process (vhost-user's INFLIGHT_SHMFD buffer), so that a device restarted on the same
 * rings executes exactly the requests its predecessor took and never completed. {@link SplitQueue}
 * calls it at the three steps of the protocol (vhost-user.rst "Inflight I/O tracking", split
 * virtqueues):
 * <ol>
 *   <li>{@link #popped} once a head is taken from the avail ring;</li>
 *   <li>{@link #publishing} before its used element is written;</li>
 *   <li>{@link #published} after the used index that covers it is stored.</li>
 * </ol>
 * and, at start, {@link #recover} with the used index found in the ring, then
 * {@link #nextResubmit} before any new pop. Each method is allocation-free.
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

    /**
     * The queue starts on rings whose used index is {@code ringUsedIdx}; {@code nextAvailIdx} is
     * what the transport said (SET_VRING_BASE). Returns the avail index to pop from next — with a
     * record of requests in flight, the used index plus their count — and queues those requests
     * for {@link #nextResubmit}. Returns -1 when the record contradicts the rings (the queue then
     * refuses to start).
     */
    int recover(int ringUsedIdx, int nextAvailIdx);

    /** The next head to execute again, oldest first, or -1 once none is left. */
    int nextResubmit();

    /** Head {@code head} was popped from the avail ring (a resubmitted head is not popped again). */
    void popped(int head);

    /** The used element for {@code head} is about to be written. */
    void publishing(int head);

    /** The used index {@code usedIdx} that covers {@code head}'s used element is stored. */
    void published(int head, int usedIdx);
}
