package io.vblk.aio.linuxaio;

/**
 * Home thread: the owning IoThread (the context of the engine it is submitted to). A
 * {@link WorkerPool} worker reads the operation fields and writes {@link #result()} between the
 * hand-over and the hand-back, both of which publish with volatile accesses.
 *
 * <p>One request as the I/O engines ({@link LinuxAio}, {@link WorkerPool}) see it: a reusable object
 * that its owner (a driver channel) preallocates, fills with one of the preparing methods, hands to
 * {@link LinuxAio#submit} or {@link WorkerPool#submit}, and gets back exactly once through its
 * {@link Completion}. The engines allocate nothing per request; they link requests through the
 * fields here.
 */
public final class AioRequest {
    /** Hears that a request finished; runs on the home thread, possibly inside the submit call. */
    @FunctionalInterface
    public interface Completion {
        /**
         * @param req    the request, free for reuse once this returns
         * @param result bytes transferred (READV/WRITEV; may be short), 0 (FDSYNC, FALLOCATE) or -errno
         */
        void aioCompleted(AioRequest req, long result);
    }

    /** {@code preadv} into the iovec array at {@link #addr}. */
    public static final int READV = 0;
    /** {@code pwritev} from the iovec array at {@link #addr}. */
    public static final int WRITEV = 1;
    /** {@code fdatasync}. */
    public static final int FDSYNC = 2;
    /** {@code fallocate(fd, mode, offset, length)}; worker pool only (no AIO opcode exists). */
    public static final int FALLOCATE = 3;

    static final int IDLE = 0;
    static final int QUEUED = 1;
    static final int IN_FLIGHT = 2;

    int op;
    int fd;
    /** READV/WRITEV: address of the {@code struct iovec} array. */
    long addr;
    /** READV/WRITEV: number of iovec entries. */
    int iovcnt;
    long offset;
    /** FALLOCATE: byte length. */
    long length;
    /** FALLOCATE: FALLOC_FL_* mode. */
    int mode;
    Completion completion;

    /** Free for the owner (e.g. the driver's request object). */
    public Object owner;
    /** Free for the owner. */
    public long ownerWord;

    // Engine-private.
    int state = IDLE;
    AioRequest next;
    int slot = -1;
    /** Written by a pool worker before the hand-back push; read on the home thread after the pop. */
    long result;
    /** Link in a pool's hand-back stack. */
    AioRequest doneNext;

    public AioRequest() {
    }

    public AioRequest readv(int fd, long iovAddr, int iovcnt, long offset, Completion completion) {
        return set(READV, fd, iovAddr, iovcnt, offset, 0, 0, completion);
    }

    public AioRequest writev(int fd, long iovAddr, int iovcnt, long offset, Completion completion) {
        return set(WRITEV, fd, iovAddr, iovcnt, offset, 0, 0, completion);
    }

    public AioRequest fdsync(int fd, Completion completion) {
        return set(FDSYNC, fd, 0, 0, 0, 0, 0, completion);
    }

    public AioRequest fallocate(int fd, int mode, long offset, long length, Completion completion) {
        return set(FALLOCATE, fd, 0, 0, offset, length, mode, completion);
    }

    private AioRequest set(int op, int fd, long addr, int iovcnt, long offset, long length, int mode,
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

    public int op() {
        return op;
    }

    public int fd() {
        return fd;
    }

    public long offset() {
        return offset;
    }

    public long length() {
        return length;
    }

    /** True between submit and completion. */
    public boolean busy() {
        return state != IDLE;
    }

    void checkSubmittable() {
        if (state != IDLE) {
            throw new IllegalStateException("request submitted twice (" + stateName() + "): " + this);
        }
        if (completion == null) {
            throw new IllegalStateException("request has no completion: " + this);
        }
    }

    /** Marks it idle and calls its completion: the one completion path of both engines. */
    void complete(long res) {
        state = IDLE;
        next = null;
        slot = -1;
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
            default -> "op" + op;
        };
    }

    @Override
    public String toString() {
        return "AioRequest[" + opName(op) + " fd=" + fd + " off=" + offset + "]";
    }
}
