package io.vblk.aio;

import io.netty.channel.IoRegistration;
import io.netty.channel.ManualIoEventLoop;
import io.netty.channel.epoll.EpollIoHandler;

import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.BooleanSupplier;
import java.util.function.Function;

/**
 * Home thread: the thread given at construction; every method not marked otherwise must be
 * called there. {@link Bh#schedule()}, {@link #runOn}, {@link #callOn} and {@link #notifyLoop()}
 * are for any thread. No locking: other threads hand work over, they never call in (seed 002).
 *
 * <p>An event loop with one home thread, as QEMU's {@code AioContext}: fd handlers on epoll (through
 * Netty 4.2's epoll {@code IoHandler}, driven by hand with {@link ManualIoEventLoop}), bottom halves,
 * timers on an injectable clock, optional adaptive busy-polling, and the home thread's defer-call
 * sections. Drained sections are not the loop's: a block node drains its devices, and each device
 * queue pauses its own kick handler ({@link FdHandler#drainedBegin}) on its IoThread (seed 003).
 *
 * <p>One iteration ({@link #poll}): run scheduled bottom halves and expired timers; if nothing ran
 * and the caller allows blocking, busy-poll the poll handlers for up to the adaptive window, then
 * block in {@code epoll_wait} until an fd is ready, a bottom half is scheduled from another thread,
 * or the next timer is due; dispatch ready fds and queued control tasks; run bottom halves and
 * timers again.
 */
public final class AioContext implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(AioContext.class.getName());
    private static final ThreadLocal<AioContext> HOME = new ThreadLocal<>();

    private final String name;
    private final Thread home;
    private final NanoClock clock;
    private volatile AioOptions options; // written on the home thread; monitors read it anywhere
    private final boolean[] guards = new boolean[Guard.values().length];
    private final Loop loop;

    private final BhQueue bhs;
    private final List<Bh> allBhs = new ArrayList<>();
    private final TimerHeap timers = new TimerHeap();
    private final List<FdHandler> fdHandlers = new ArrayList<>();
    private final Poller poller;
    private final Map<Object, Object> attachments = new HashMap<>();
    private DeferCall deferCall;
    private boolean fdProgress;
    private RuntimeException callbackError;
    private boolean closed;

    private long nestedWaits;
    private long nestedWaitTimeouts;
    private long iterations;
    private long bhRuns;
    private long timerRuns;
    private long blockedNanos;
    /** Foreign completion attempts handed over (seed 002); any thread adds, so atomic. */
    private final java.util.concurrent.atomic.AtomicLong foreignCompletions = new java.util.concurrent.atomic.AtomicLong();
    /** Counted by {@link FdHandler#drainedBegin} and {@link FdHandler#drainedEnd}. */
    long drainedSections;
    long drainRechecks;

    /** Netty's user-driven loop; our bottom halves join its "may I block?" re-check. */
    private final class Loop extends ManualIoEventLoop {
        Loop(Thread owner) {
            super(owner, EpollIoHandler.newFactory());
        }

        /**
         * Called by the epoll handler after it has published its wake-up deadline, so a
         * {@link Bh#schedule()} racing with the block either sees the deadline (and writes the
         * wake-up eventfd) or is seen here. Pairs with the push in {@link #pushBh}.
         */
        @Override
        protected boolean canBlock() {
            return !hasPendingBhs();
        }
    }

    /**
     * Creates a context whose home thread is {@code home}. Construct it on any thread; the loop
     * runs only on {@code home}.
     */
    public AioContext(String name, Thread home, NanoClock clock, AioOptions options) {
        this.name = name;
        this.home = home;
        this.clock = clock;
        this.options = options;
        java.util.Arrays.fill(guards, true);
        this.loop = new Loop(home);
        this.poller = new Poller(this, options);
        this.bhs = new BhQueue(home, loop::wakeup);
        if (home == Thread.currentThread()) {
            bindHome();
        }
    }

    /** A context whose home thread is the caller's (the main loop, a test). */
    public static AioContext forCurrentThread(String name) {
        return new AioContext(name, Thread.currentThread(), NanoClock.SYSTEM, AioOptions.DEFAULT);
    }

    /** The context whose home thread is the caller, or null. Any thread. */
    public static AioContext current() {
        return HOME.get();
    }

    /** Makes the calling thread (the home thread) known as this context's. */
    void bindHome() {
        if (Thread.currentThread() != home) {
            throw new IllegalStateException("context " + name + " bound from " + Thread.currentThread().getName());
        }
        AioContext other = HOME.get();
        if (other != null && other != this && !other.closed) {
            throw new IllegalStateException("thread " + home.getName() + " is already home of context " + other.name);
        }
        HOME.set(this);
        deferCall = DeferCall.current();
    }

    public String name() {
        return name;
    }

    public Thread homeThread() {
        return home;
    }

    public NanoClock clock() {
        return clock;
    }

    /** Now on this context's clock. Any thread. */
    public long now() {
        return clock.nanoTime();
    }

    public AioOptions options() {
        return options;
    }

    /** Changes the polling and batching knobs at run time (QMP qom-set on an iothread). Home thread. */
    public void setOptions(AioOptions o) {
        assertLoopThread();
        options = o;
        poller.setOptions(o);
    }

    /** True when called on the home thread. Any thread. */
    public boolean inHomeThread() {
        return Thread.currentThread() == home;
    }

    /**
     * The entry check of home-thread state (seed 002): throws unless called on the home thread.
     * With {@link Guard#HOME_THREAD} off (reproducers only) it checks nothing.
     */
    public void assertHome() {
        if (guards[Guard.HOME_THREAD.ordinal()] && Thread.currentThread() != home) {
            throw new IllegalStateException("state of context " + name + " touched from thread "
                    + Thread.currentThread().getName() + "; its home thread is " + home.getName()
                    + ": hand the work over with runOn() or a bottom half instead (seed 002)");
        }
    }

    /** The loop's own structures are checked whatever the guards say. */
    void assertLoopThread() {
        if (Thread.currentThread() != home) {
            throw new IllegalStateException("event loop " + name + " used from thread "
                    + Thread.currentThread().getName() + "; its home thread is " + home.getName());
        }
    }

    public boolean guard(Guard g) {
        return guards[g.ordinal()];
    }

    /** Turns a hazard guard off or on; for reproducers and tests only. Any thread, before use. */
    public void setGuard(Guard g, boolean on) {
        guards[g.ordinal()] = on;
    }

    // ---------------------------------------------------------------- bottom halves

    /** Creates a bottom half; allocation happens here, never when scheduling. Any thread. */
    public Bh bh(String bhName, Runnable callback) {
        Bh bh = bhs.newBh(bhName, name, callback);
        synchronized (allBhs) { // control plane only: creation and close
            allBhs.add(bh);
        }
        return bh;
    }

    boolean hasPendingBhs() {
        return bhs.hasPending();
    }

    private boolean runBhs() {
        int ran = bhs.runAll();
        bhRuns += ran;
        return ran > 0;
    }

    // ---------------------------------------------------------------- timers

    public Timer timer(String timerName, Runnable callback) {
        return new Timer(this, timerName, callback);
    }

    TimerHeap timers() {
        return timers;
    }

    private boolean runTimers() {
        boolean ran = false;
        long now = clock.nanoTime();
        Timer t;
        while ((t = timers.pollExpired(now)) != null) {
            timerRuns++;
            ran = true;
            t.fire();
        }
        return ran;
    }

    /** Nanoseconds until the next timer (at least 1), or 0 meaning "none": Netty's "block until I/O". */
    private long waitForTimers() {
        Timer next = timers.peek();
        if (next == null) {
            return 0;
        }
        return Math.max(1, next.deadline - clock.nanoTime());
    }

    // ---------------------------------------------------------------- fd and poll handlers

    /**
     * Registers a level-triggered read-ready handler on {@code fd}, enabled. Its owner may pause it
     * for a drained section ({@link FdHandler#drainedBegin}). Home thread.
     */
    public FdHandler addFdHandler(String handlerName, int fd, FdHandler.Callback callback) {
        assertLoopThread();
        FdHandler h = new FdHandler(this, handlerName, fd, callback);
        IoRegistration reg;
        try {
            reg = loop.register(h).sync().getNow();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted registering " + h, e);
        }
        h.attach(reg);
        fdHandlers.add(h);
        h.enable(true);
        return h;
    }

    /** A listening socket's accept handler: guard off, a main-loop source (see {@link NestedWait}). */
    public FdHandler addListener(String handlerName, int fd, FdHandler.Callback callback) {
        FdHandler h = addFdHandler(handlerName, fd, callback);
        h.mainLoopOnly = !guard(Guard.NO_BLOCKING_WAIT);
        return h;
    }

    /** Registers a busy-poll hook without window hooks. Home thread. */
    public PollHandler addPollHandler(String handlerName, BooleanSupplier poll) {
        return addPollHandler(handlerName, poll, null, null);
    }

    /**
     * Registers a busy-poll hook: {@code poll} takes the work it finds and says whether there was
     * any; {@code pollBegin} runs once when polling starts and {@code pollEnd} once when it ends
     * before the loop blocks (either may be null; see {@link Poller}). Home thread.
     */
    public PollHandler addPollHandler(String handlerName, BooleanSupplier poll, Runnable pollBegin,
                                      Runnable pollEnd) {
        assertLoopThread();
        PollHandler p = new PollHandler(this, handlerName, poll, pollBegin, pollEnd);
        poller.add(p);
        return p;
    }

    void forget(FdHandler h) {
        fdHandlers.remove(h);
    }

    void forget(PollHandler p) {
        poller.remove(p);
    }

    void noteProgress() {
        fdProgress = true;
    }

    // ---------------------------------------------------------------- the loop

    /**
     * Runs one iteration; with {@code blocking} it waits for something to do first. Returns
     * whether any callback ran (progress), so tests can step the loop. Home thread.
     */
    public boolean poll(boolean blocking) {
        assertLoopThread();
        if (closed) {
            throw new IllegalStateException("context " + name + " is closed");
        }
        iterations++;
        boolean progress = runBhs();
        progress |= runTimers();
        long wait = -1; // Netty: -1 = do not block
        long windowStart = 0;
        if (blocking && !progress) {
            // QEMU's try_poll_mode, then poll_set_started(false) only when about to block.
            windowStart = System.nanoTime();
            if (poller.mayPoll() && poller.window()) {
                progress = true; // the window caught it: QEMU's sweet spot, no adjustment
            } else if (poller.end()) {
                progress = true; // the last poll after pollEnd found work: do not block
                poller.adjust(System.nanoTime() - windowStart, false);
            } else {
                wait = waitForTimers();
            }
        }
        fdProgress = false;
        long t0 = wait >= 0 ? System.nanoTime() : 0;
        int n = loop.run(wait, 0);
        if (wait >= 0) {
            long woke = System.nanoTime();
            blockedNanos += woke - t0;
            poller.adjust(woke - windowStart, true);
        }
        rethrowCallbackError();
        progress |= n > 0 || fdProgress;
        progress |= runBhs();
        progress |= runTimers();
        return progress;
    }

    /**
     * QEMU's adaptive window adjustment ({@link Poller#adjust}); {@code blockNs} runs from the start
     * of the busy-poll window to the wake-up; {@code slept}: the loop blocked. For step tests.
     */
    void adjustPollWindow(long blockNs, boolean slept) {
        poller.adjust(blockNs, slept);
    }

    /** The current busy-poll window in nanoseconds. */
    public long pollWindowNanos() {
        return poller.windowNanos();
    }

    /** Whether polling is started (between the first window after a block and the next block). */
    public boolean pollStarted() {
        return poller.started();
    }

    void callbackFailed(RuntimeException e, Object where) {
        LOG.log(System.Logger.Level.ERROR, "context " + name + ": callback " + where + " failed", e);
        if (callbackError == null) {
            callbackError = e;
        } else {
            callbackError.addSuppressed(e);
        }
    }

    private void rethrowCallbackError() {
        RuntimeException e = callbackError;
        if (e != null) {
            callbackError = null;
            throw e;
        }
    }

    /**
     * QEMU's {@code AIO_WAIT_WHILE}: polls this context until {@code busy} is false (true) or
     * {@code bound} passes (false, counted: seed 004's hang). See {@link NestedWait}. Home thread.
     */
    public boolean waitWhile(BooleanSupplier busy, Duration bound) {
        assertLoopThread();
        nestedWaits++;
        boolean cleared = NestedWait.run(this, fdHandlers, busy, bound);
        if (!cleared) {
            nestedWaitTimeouts++;
        }
        return cleared;
    }

    public long nestedWaits() {
        return nestedWaits;
    }

    public long nestedWaitTimeouts() {
        return nestedWaitTimeouts;
    }

    /** Wakes the loop if it is blocked. Any thread. */
    public void notifyLoop() {
        loop.wakeup();
    }

    // ---------------------------------------------------------------- hand-over

    /** Runs {@code task} on the home thread at the next iteration. Any thread; control plane. */
    public void runOn(Runnable task) {
        loop.execute(task);
    }

    /** Runs {@code fn} on the home thread and completes the future with its result. Any thread. */
    public <T> CompletableFuture<T> callOn(Callable<T> fn) {
        CompletableFuture<T> f = new CompletableFuture<>();
        loop.execute(() -> {
            try {
                f.complete(fn.call());
            } catch (Throwable t) {
                f.completeExceptionally(t);
            }
        });
        return f;
    }

    /**
     * Blocks the calling thread until {@code f} completes or the timeout passes. Refused on any
     * context's home thread (unless that context's {@link Guard#NO_BLOCKING_WAIT} is off): a home
     * thread that blocks stops every handler of its loop, and a wait that depends on one of them
     * never ends — seed 004's deadlock. Make the operation asynchronous instead.
     *
     * @throws CompletionException wrapping the failure, or a {@link TimeoutException}
     */
    public static <T> T await(CompletableFuture<T> f, Duration timeout) {
        checkMayBlock("blocking wait");
        try {
            return f.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CompletionException(e);
        } catch (ExecutionException e) {
            throw new CompletionException(e.getCause());
        } catch (TimeoutException e) {
            throw new CompletionException(new TimeoutException("no result within " + timeout));
        }
    }

    /**
     * Throws unless the calling thread may block: refused on any context's home thread (unless that
     * context's {@link Guard#NO_BLOCKING_WAIT} is off), since while it blocks none of its handlers
     * run (seed 004). Every blocking wait in vblk calls this first. Any thread.
     *
     * @param what the wait, for the message (e.g. "blocking wait", "closing IoThread io0")
     */
    public static void checkMayBlock(String what) {
        AioContext here = HOME.get();
        if (here != null && !here.closed && here.guard(Guard.NO_BLOCKING_WAIT)) {
            throw new IllegalStateException(what + " refused on thread " + Thread.currentThread().getName()
                    + ", the home thread of context " + here.name + ": while it blocks, none of that context's"
                    + " handlers can run, so a wait that depends on one of them deadlocks (seed 004);"
                    + " continue asynchronously instead");
        }
    }

    // ---------------------------------------------------------------- per-context state

    /**
     * The home thread's defer-call sections. Home thread. With {@link Guard#HOME_THREAD} off
     * (reproducers only) a foreign caller gets its own thread's sections, as QEMU's per-thread
     * {@code defer_call}, so it reaches the engine state that seed 002 corrupts.
     */
    public DeferCall deferCall() {
        if (!guards[Guard.HOME_THREAD.ordinal()] && Thread.currentThread() != home) {
            return DeferCall.current();
        }
        DeferCall d = deferCall;
        if (d == null) {
            assertLoopThread();
            d = deferCall = DeferCall.current();
        }
        return d;
    }

    /** A per-context singleton (e.g. this context's AIO engine), made on first use. Home thread. */
    @SuppressWarnings("unchecked")
    public <T> T attachment(Object key, Function<AioContext, T> factory) {
        assertLoopThread();
        Object v = attachments.get(key);
        if (v == null) {
            v = factory.apply(this);
            attachments.put(key, v);
        }
        return (T) v;
    }

    // ---------------------------------------------------------------- statistics (any thread; plain reads)

    public long iterations() {
        return iterations;
    }

    public long bhRuns() {
        return bhRuns;
    }

    public long timerRuns() {
        return timerRuns;
    }

    /** Work found by poll handlers, in busy-poll windows or the last poll before a block. */
    public long pollHits() {
        return poller.hits();
    }

    /** Busy-poll windows that spun to their end without work (the loop then blocked). */
    public long pollMisses() {
        return poller.misses();
    }

    public long blockedNanos() {
        return blockedNanos;
    }

    public long spinNanos() {
        return poller.spinNanos();
    }

    /** Handlers of this context paused by drained sections (a device queue's kick handler, once per section). */
    public long drainedSections() {
        return drainedSections;
    }

    /** Paused handlers re-run when their drained section ended, so no kick is lost. */
    public long drainRechecks() {
        return drainRechecks;
    }

    /** Counts a foreign thread's completion attempt handed over here, not reaped there (seed 002). Any thread. */
    public void countForeignCompletion() {
        foreignCompletions.incrementAndGet();
    }

    /** Foreign completion attempts handed over to this context (seed 002). Any thread. */
    public long foreignCompletions() {
        return foreignCompletions.get();
    }

    // ---------------------------------------------------------------- close

    /** Closes; fails, naming them, while bottom halves are scheduled (their work would be lost). Home thread. */
    @Override
    public void close() {
        assertLoopThread();
        if (closed) {
            return;
        }
        // Control tasks queued by other threads run first; they may schedule bottom halves.
        loop.runNow();
        List<String> pending = new ArrayList<>();
        synchronized (allBhs) {
            for (Bh b : allBhs) {
                if (b.isScheduled()) {
                    pending.add(b.name());
                }
            }
        }
        if (!pending.isEmpty()) {
            throw new IllegalStateException("context " + name + " closed with bottom halves still scheduled: "
                    + String.join(", ", pending));
        }
        closed = true;
        for (FdHandler h : new ArrayList<>(fdHandlers)) {
            h.remove();
        }
        loop.shutdown();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (!loop.isTerminated() && System.nanoTime() - deadline < 0) {
            loop.runNow();
        }
        if (HOME.get() == this) {
            HOME.remove();
        }
    }

    public boolean isClosed() {
        return closed;
    }

    public String armedTimers() {
        return timers.names();
    }

    @Override
    public String toString() {
        return "AioContext[" + name + "]";
    }
}
