package io.vblk.aio.engine;

/**
 * Home thread: the owning IoThread (the context of the engine it is submitted to). A thread-pool
 * worker reads the operation fields and writes {@link #backendResult(long)} between the hand-over
 * and the hand-back, both of which publish with volatile accesses.
 *
 * <p>One request as every I/O engine sees it: a reusable object that its owner (a driver channel)
 * preallocates, fills with one of the preparing methods, hands to {@link IoEngine#submit}, and gets
 * back exactly once through its {@link Completion}. The engines allocate nothing per request; the
 * {@link SubmissionQueue} links requests through {@link #nextQueued()}, and a backend keeps its own
 * per-request state in the backend fields ({@link #backendSlot()}, {@link #backendResult()},
 * {@link #backendLink()}).
 *
 * <p>Not final: a driver whose one block request needs several engine steps (bounce buffers,
 * read-modify-write, FUA) subclasses it and keeps that state in the subclass, so the driver's
 * request and the engine's request are one object.
 */
public class IoRequest {
    /** Hears that a request finished; runs on the home thread, possibly inside the submit call. */
    @FunctionalInterface
    public interface Completion {
        /**
         * @param req    the request, free for reuse once this returns
         * @param result bytes transferred (READV/WRITEV; may be short), 0 (FDSYNC, FALLOCATE, SECURE_DISCARD) or -errno
         */
        void aioCompleted(IoRequest req, long result);
    }

    /** {@code preadv} into the iovec array at {@link #iovAddress()}. */
    public static final int READV = 0;
    /** {@code pwritev} from the iovec array at {@link #iovAddress()}. */
    public static final int WRITEV = 1;
    /** {@code fdatasync}. */
    public static final int FDSYNC = 2;
    /** {@code fallocate(fd, mode, offset, length)}. */
    public static final int FALLOCATE = 3;
    /**
     * {@code ioctl(fd, BLKSECDISCARD, {offset, length})}: a block device's secure erase. No kernel
     * I/O interface runs ioctls asynchronously, so every engine but the worker pool refuses it
     * ({@link EngineBackend#supports}) and the queue hands it to the pool.
     */
    public static final int SECURE_DISCARD = 4;
    /** The highest op code. */
    public static final int LAST_OP = SECURE_DISCARD;

    static final int IDLE = 0;
    static final int QUEUED = 1;
    static final int IN_FLIGHT = 2;

    private int op;
    private int fd;
    private long addr;
    private int iovcnt;
    private long offset;
    private long length;
    private int mode;
    private Completion completion;

    /** Free for the owner (a test, a benchmark loop). */
    public Object owner;
    /** Free for the owner. */
    public long ownerWord;

    // The queue's.
    int state = IDLE;
    IoRequest next;

    // The backend's.
    private int slot = -1;
    private long result;
    private IoRequest link;

    public IoRequest() {
    }

    public final IoRequest readv(int fd, long iovAddr, int iovcnt, long offset, Completion completion) {
        return set(READV, fd, iovAddr, iovcnt, offset, 0, 0, completion);
    }

    public final IoRequest writev(int fd, long iovAddr, int iovcnt, long offset, Completion completion) {
        return set(WRITEV, fd, iovAddr, iovcnt, offset, 0, 0, completion);
    }

    public final IoRequest fdsync(int fd, Completion completion) {
        return set(FDSYNC, fd, 0, 0, 0, 0, 0, completion);
    }

    public final IoRequest fallocate(int fd, int mode, long offset, long length, Completion completion) {
        return set(FALLOCATE, fd, 0, 0, offset, length, mode, completion);
    }

    public final IoRequest secureDiscard(int fd, long offset, long length, Completion completion) {
        return set(SECURE_DISCARD, fd, 0, 0, offset, length, 0, completion);
    }

    private IoRequest set(int op, int fd, long addr, int iovcnt, long offset, long length, int mode,
                          Completion completion) {
        if (state != IDLE) {
            throw new IllegalStateException("request reused while " + stateName() + ": " + this);
        }
        this.op = op;
        this.fd = fd;
        this.addr = addr;
        this.iovcnt = iovcnt;
        this.offset = offset;
        this.length = length;
        this.mode = mode;
        this.completion = completion;
        return this;
    }

    public final int op() {
        return op;
    }

    public final int fd() {
        return fd;
    }

    /** READV/WRITEV: address of the {@code struct iovec} array. */
    public final long iovAddress() {
        return addr;
    }

    /** READV/WRITEV: number of iovec entries. */
    public final int iovCount() {
        return iovcnt;
    }

    /** File offset (READV, WRITEV, FALLOCATE, SECURE_DISCARD). */
    public final long offset() {
        return offset;
    }

    /** FALLOCATE, SECURE_DISCARD: byte length. */
    public final long length() {
        return length;
    }

    /** FALLOCATE: FALLOC_FL_* mode. */
    public final int mode() {
        return mode;
    }

    /** True between submit and completion. */
    public final boolean busy() {
        return state != IDLE;
    }

    /** The next request in the queue's pending list, for {@link EngineBackend#submit}; null at the end. */
    public final IoRequest nextQueued() {
        return next;
    }

    // ---------------------------------------------------------------- backend fields

    /** Backend-owned: a slot number (e.g. the iocb / aio_data index); -1 when unset. */
    public final int backendSlot() {
        return slot;
    }

    public final void backendSlot(int s) {
        slot = s;
    }

    /** Backend-owned: a result the backend keeps until it hands the request back. */
    public final long backendResult() {
        return result;
    }

    public final void backendResult(long r) {
        result = r;
    }

    /** Backend-owned: a link for the backend's own lists (never the queue's). */
    public final IoRequest backendLink() {
        return link;
    }

    public final void backendLink(IoRequest l) {
        link = l;
    }

    // ---------------------------------------------------------------- queue side

    final void checkSubmittable() {
        if (state != IDLE) {
            throw new IllegalStateException("request submitted twice (" + stateName() + "): " + this);
        }
        if (completion == null) {
            throw new IllegalStateException("request has no completion: " + this);
        }
    }

    /** Marks it idle and calls its completion: the one completion path of every engine. */
    final void complete(long res) {
        state = IDLE;
        next = null;
        slot = -1;
        link = null;
        completion.aioCompleted(this, res);
    }

    private String stateName() {
        return switch (state) {
            case QUEUED -> "queued";
            case IN_FLIGHT -> "in flight";
            default -> "idle";
        };
    }

    public static String opName(int op) {
        return switch (op) {
            case READV -> "readv";
            case WRITEV -> "writev";
            case FDSYNC -> "fdsync";
            case FALLOCATE -> "fallocate";
            case SECURE_DISCARD -> "secure-discard";
            default -> "op" + op;
        };
    }

    @Override
    public String toString() {
        return "IoRequest[" + opName(op) + " fd=" + fd + " off=" + offset + "]";
    }
}
