package io.vblk.drivers.node;

import io.vblk.aio.AioContext;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.WriteGate;
import io.vblk.drivers.WriteObserver;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * Home thread: the main loop (the context given at construction). No locking, except the set of
 * open channels: {@link #openChannel} and {@link #closeChannel} run on each channel's own IoThread.
 *
 * <p>A block node, as QEMU's {@code BlockDriverState}: a name ({@code node-name}), the driver that
 * serves it, the parents attached to it (devices, exports: {@link DrainParent}) and the channels
 * opened on it, one per (user, IoThread). Its drained sections are QEMU 8's
 * {@code bdrv_drained_begin}/{@code bdrv_drained_end}: per node, not per event loop.
 *
 * <p>{@link #drainedBegin} increments the quiesce counter; the outermost begin tells every parent
 * to stop taking requests and returns a future that completes, on this home thread, once every
 * parent has stopped and then no channel of the node has a request in flight. Nothing blocks
 * (seed 004): the wait is a chain of hand-overs, never a nested loop. {@link #drainedEnd}
 * decrements it; the outermost end tells every parent to resume and re-check its queues.
 *
 * <p>Why the wait is complete (seed 003's invariant, "nothing reaches the driver between the drain
 * and the end"): (1) the channels are counted only after every parent has reported that each of its
 * contexts stopped, so after that point only requests submitted earlier can be in flight and the
 * counts can only fall; (2) each channel's count lives on its IoThread and is read there by
 * {@link BlockChannel#drain}, handed over with {@link AioContext#runOn} — never read from here;
 * (3) each channel reports idle back to this thread with another hand-over, and the future
 * completes when the last one arrives. A channel closed in between reports idle at once: the task
 * that checks runs on the same thread as the close, so it sees whether the close came first.
 */
public final class BlockNode implements AutoCloseable {
    private final String name;
    private final BlockDriver driver;
    private final AioContext home;
    private final List<DrainParent> parents = new ArrayList<>();
    /** Open channels. Any thread: added and removed on each channel's IoThread. */
    private final Set<BlockChannel> channels = ConcurrentHashMap.newKeySet();
    private final List<ChannelListener> channelListeners = new CopyOnWriteArrayList<>();
    private int quiesceCounter;
    /** The current outermost section, while the node is drained. */
    private Section section;
    private long sections;
    private boolean closed;
    /** Attached dirty bitmaps: copy-on-write, read per write completion on the channels' IoThreads. */
    private volatile DirtyBitmap[] bitmaps = new DirtyBitmap[0];
    /** The write filter (a backup's copy-before-write), or null: read per write on the channels' IoThreads. */
    private volatile WriteGate filter;
    /** Asks the filter, if any, about each write-like request of every channel. Any thread, allocation-free. */
    private final WriteGate gate = (ch, io) -> {
        WriteGate f = filter; // volatile read: pairs with the write in setWriteFilter
        return f == null || f.admit(ch, io);
    };
    /** Channels that could not take the write hooks (a driver's own channel class): not tracked. */
    private final Set<BlockChannel> untracked = ConcurrentHashMap.newKeySet();
    /** Marks each write-like completion in every attached bitmap. Any thread, allocation-free. */
    private final WriteObserver tracker = (offset, length) -> {
        for (DirtyBitmap b : bitmaps) {
            b.mark(offset, length);
        }
    };

    /** One outermost drained section: what its wait still waits for. Home thread: the node's. */
    private static final class Section {
        final CompletableFuture<Void> quiesced = new CompletableFuture<>();
        /** Parents that have not reported stopped yet, plus one held by drainedBegin itself. */
        int parentsLeft;
        /** Channels that have not reported idle yet, plus one held while handing over. */
        int channelsLeft;
    }

    /** A node named {@code name} served by {@code driver}; {@code home} is the main loop. Home thread. */
    public BlockNode(String name, BlockDriver driver, AioContext home) {
        this.name = name;
        this.driver = driver;
        this.home = home;
    }

    /** The node-name. Any thread. */
    public String name() {
        return name;
    }

    /** Any thread. */
    public BlockDriver driver() {
        return driver;
    }

    /** The node's home: the main loop. Any thread. */
    public AioContext home() {
        return home;
    }

    // ---------------------------------------------------------------- channels

    /** Opens a channel of the driver on {@code ctx} and counts it as the node's. Called on {@code ctx}'s home thread. */
    public BlockChannel openChannel(AioContext ctx) {
        ctx.assertHome();
        BlockChannel ch = driver.openChannel(ctx);
        if (!ch.observeWrites(tracker) | !ch.gateWrites(gate)) {
            untracked.add(ch);
        }
        channels.add(ch);
        for (ChannelListener l : channelListeners) {
            l.opened(ch);
        }
        return ch;
    }

    /**
     * Hears that a channel of this node opened or is about to close (metrics bind the channel's
     * engine then: it exists only from the first open on). Called on that channel's IoThread, once
     * per open and close, never on the request path.
     */
    public interface ChannelListener {
        void opened(BlockChannel ch);

        void closing(BlockChannel ch);
    }

    /** Adds {@code l} for channels opened from now on. Any thread. */
    public void addChannelListener(ChannelListener l) {
        channelListeners.add(l);
    }

    /** Any thread. */
    public void removeChannelListener(ChannelListener l) {
        channelListeners.remove(l);
    }

    /** Closes a channel opened by {@link #openChannel}. Called on the channel's home thread. */
    public void closeChannel(BlockChannel ch) {
        ch.context().assertHome();
        channels.remove(ch);
        untracked.remove(ch);
        for (ChannelListener l : channelListeners) {
            l.closing(ch);
        }
        ch.close();
    }

    /**
     * Requests in flight over every channel of the node: each count is read on its own IoThread;
     * the future completes on this home thread. Home thread.
     */
    public CompletableFuture<Long> inFlight() {
        home.assertHome();
        CompletableFuture<Long> f = new CompletableFuture<>();
        List<BlockChannel> snapshot = List.copyOf(channels);
        long[] sum = {0};
        int[] left = {snapshot.size() + 1};
        Runnable oneMore = () -> {
            if (--left[0] == 0) {
                f.complete(sum[0]);
            }
        };
        for (BlockChannel ch : snapshot) {
            ch.context().runOn(() -> {
                int n = channels.contains(ch) ? ch.inFlight() : 0;
                home.runOn(() -> {
                    sum[0] += n;
                    oneMore.run();
                });
            });
        }
        oneMore.run();
        return f;
    }

    // ---------------------------------------------------------------- dirty bitmaps

    /**
     * Attaches {@code b}: from now on every write, write-zeroes and discard that completes through
     * any channel of the node marks it ({@link WriteObserver}). Throws when a channel of the node
     * cannot report its writes. Home thread.
     */
    public void addDirtyBitmap(DirtyBitmap b) {
        home.assertHome();
        checkOpen();
        if (!untracked.isEmpty()) {
            throw new IllegalStateException("node " + name + " has a channel that cannot track writes ("
                    + untracked.iterator().next() + ")");
        }
        DirtyBitmap[] old = bitmaps;
        DirtyBitmap[] now = java.util.Arrays.copyOf(old, old.length + 1);
        now[old.length] = b;
        bitmaps = now; // volatile write: pairs with the read in tracker on each channel's IoThread
    }

    /** Detaches {@code b}; marks already under way may still land in it. Home thread. */
    public void removeDirtyBitmap(DirtyBitmap b) {
        home.assertHome();
        List<DirtyBitmap> l = new ArrayList<>(List.of(bitmaps));
        l.remove(b);
        bitmaps = l.toArray(new DirtyBitmap[0]);
    }

    /**
     * Puts {@code f} in the write path of every channel of the node, open or opened later (null
     * takes it out); at most one at a time. Requests validated before this call are not shown to
     * it: install it inside a drained section for a point in time. Throws when a channel of the
     * node cannot gate its writes. Home thread.
     */
    public void setWriteFilter(WriteGate f) {
        home.assertHome();
        if (f != null) {
            checkOpen();
            if (filter != null) {
                throw new IllegalStateException("node " + name + " already has a write filter");
            }
            if (!untracked.isEmpty()) {
                throw new IllegalStateException("node " + name + " has a channel that cannot gate writes ("
                        + untracked.iterator().next() + ")");
            }
        }
        filter = f; // volatile write: pairs with the read in gate on each channel's IoThread
    }

    /** Attached dirty bitmaps. Home thread. */
    public int dirtyBitmapCount() {
        return bitmaps.length;
    }

    // ---------------------------------------------------------------- parents

    /** Attaches a parent; if the node is drained, the parent is drained at once. Home thread. */
    public void attach(DrainParent p) {
        home.assertHome();
        checkOpen();
        if (parents.contains(p)) {
            throw new IllegalStateException(p.drainName() + " is already attached to node " + name);
        }
        parents.add(p);
        if (quiesceCounter > 0) {
            // A new parent has nothing in flight: the section's wait need not include it.
            p.drainedBegin(() -> { });
        }
    }

    /** Detaches a parent; if the node is drained, the parent's section ends. Home thread. */
    public void detach(DrainParent p) {
        home.assertHome();
        if (parents.remove(p) && quiesceCounter > 0) {
            p.drainedEnd();
        }
    }

    /**
     * Moves every parent of this node to {@code target} (QEMU's {@code bdrv_replace_node}, as
     * mirror's completion does): each parent is attached to the target, told to re-open what it
     * submits on there ({@link DrainParent#replaceNode}, which may hand over to its IoThreads), then
     * detached from this node; {@code done} runs on this home thread once every parent has moved.
     * Both nodes must be drained, so no parent takes a request in between: attaching to the
     * drained target nests the parent's drain, detaching from this node ends only the inner one,
     * and the parents resume when the target's section ends. Home thread.
     */
    public void replaceParents(BlockNode target, Runnable done) {
        home.assertHome();
        if (quiesceCounter == 0 || target.quiesceCounter() == 0) {
            throw new IllegalStateException("replacing node " + name + " by " + target.name + " needs both drained");
        }
        List<DrainParent> ps = List.copyOf(parents);
        for (DrainParent p : ps) {
            if (!p.canReplaceNode()) {
                throw new IllegalStateException(p.drainName() + " cannot move from node " + name + " to another node");
            }
        }
        int[] left = {ps.size() + 1};
        Runnable oneMoved = () -> {
            if (--left[0] == 0) {
                for (DrainParent p : ps) {
                    detach(p);
                }
                done.run();
            }
        };
        for (DrainParent p : ps) {
            target.attach(p);
            p.replaceNode(this, target, () -> home.runOn(oneMoved));
        }
        oneMoved.run();
    }

    /** The attached parents, in attach order. Home thread. */
    public List<DrainParent> parents() {
        home.assertHome();
        return List.copyOf(parents);
    }

    // ---------------------------------------------------------------- drained sections

    /**
     * Begins a drained section; sections nest. The outermost begin stops every parent; the future
     * completes on this home thread once they have stopped and the node has nothing in flight on
     * any IoThread. A nested begin returns the outermost section's future (already complete once
     * the node is quiet). Never blocks: continue in the future's callback. Home thread.
     */
    public CompletableFuture<Void> drainedBegin() {
        home.assertHome();
        checkOpen();
        if (quiesceCounter++ > 0) {
            return section.quiesced;
        }
        sections++;
        Section s = section = new Section();
        List<DrainParent> ps = List.copyOf(parents);
        s.parentsLeft = ps.size() + 1;
        for (DrainParent p : ps) {
            // Back to this thread whichever thread the parent reports from (seed 002).
            p.drainedBegin(() -> home.runOn(() -> parentStopped(s)));
        }
        parentStopped(s);
        return s.quiesced;
    }

    private void parentStopped(Section s) {
        if (--s.parentsLeft > 0) {
            return;
        }
        // Every parent has stopped: from here the channels' counts only fall (see the class comment).
        List<BlockChannel> snapshot = List.copyOf(channels);
        s.channelsLeft = snapshot.size() + 1;
        for (BlockChannel ch : snapshot) {
            ch.context().runOn(() -> {
                Runnable idle = () -> home.runOn(() -> channelIdle(s));
                if (channels.contains(ch)) {
                    ch.drain(idle); // runs idle on this IoThread once its count is 0 (at once if it is)
                } else {
                    idle.run(); // closed meanwhile, on this same thread: nothing in flight
                }
            });
        }
        channelIdle(s);
    }

    private void channelIdle(Section s) {
        if (--s.channelsLeft == 0) {
            s.quiesced.complete(null);
        }
    }

    /** Ends a drained section; the outermost end resumes every parent. Home thread. */
    public void drainedEnd() {
        home.assertHome();
        if (quiesceCounter == 0) {
            throw new IllegalStateException("drainedEnd without drainedBegin on node " + name);
        }
        if (--quiesceCounter > 0) {
            return;
        }
        // A wait still under way completes its own future later; nobody needs it to end the section.
        section = null;
        for (DrainParent p : List.copyOf(parents)) {
            p.drainedEnd();
        }
    }

    /** True inside a drained section (from the begin, before the wait has completed, too). Home thread. */
    public boolean isDrained() {
        home.assertHome();
        return quiesceCounter > 0;
    }

    /** The quiesce counter: how many drained sections are open. Home thread. */
    public int quiesceCounter() {
        home.assertHome();
        return quiesceCounter;
    }

    /** Outermost drained sections begun so far. Home thread. */
    public long sections() {
        home.assertHome();
        return sections;
    }

    // ---------------------------------------------------------------- resize

    /**
     * Changes the node's size to {@code bytes} (QMP {@code block_resize}, as QEMU's
     * {@code qmp_block_resize}: the node is drained around the truncate). The steps, none of which
     * blocks a loop: a drained section begins; once the node is quiet, {@link BlockDriver#resize}
     * runs on a worker thread (ftruncate is a blocking system call); back on this home thread every
     * parent hears {@link DrainParent#resized} (a device updates its capacity and notifies its
     * driver: the vhost-user config-change message), then the section ends. The future completes on
     * this home thread with the new size, or with the driver's error ({@link IllegalArgumentException}
     * carries QEMU's message). Home thread.
     */
    public CompletableFuture<Long> resize(long bytes) {
        home.assertHome();
        checkOpen();
        CompletableFuture<Long> done = new CompletableFuture<>();
        if (bytes < 0) {
            // QEMU: QERR_INVALID_PARAMETER_VALUE, "Parameter 'size' expects a >0 size".
            done.completeExceptionally(new IllegalArgumentException("Parameter 'size' expects a >0 size"));
            return done;
        }
        if (driver.readOnly()) {
            done.completeExceptionally(new IllegalArgumentException("Block node is read-only"));
            return done;
        }
        drainedBegin().whenComplete((quiet, drainError) -> Thread.ofVirtual().name("resize " + name).start(() -> {
            long now;
            try {
                now = driver.resize(bytes);
            } catch (RuntimeException e) {
                home.runOn(() -> {
                    drainedEnd();
                    done.completeExceptionally(e);
                });
                return;
            }
            home.runOn(() -> {
                RuntimeException failed = null;
                try {
                    for (DrainParent p : List.copyOf(parents)) {
                        p.resized(now);
                    }
                } catch (RuntimeException e) {
                    failed = e;
                }
                drainedEnd(); // before the caller hears: the node takes requests again at the new size
                if (failed != null) {
                    done.completeExceptionally(failed);
                } else {
                    done.complete(now);
                }
            });
        }));
        return done;
    }

    // ---------------------------------------------------------------- close

    /** Closes the node and its driver; every parent must be detached and every channel closed. Home thread. */
    @Override
    public void close() {
        home.assertHome();
        if (closed) {
            return;
        }
        if (!parents.isEmpty() || !channels.isEmpty()) {
            throw new IllegalStateException("node " + name + " closed while in use: " + parents.size()
                    + " parent(s), " + channels.size() + " open channel(s)");
        }
        closed = true;
        driver.close();
    }

    private void checkOpen() {
        if (closed) {
            throw new IllegalStateException("node " + name + " is closed");
        }
    }

    @Override
    public String toString() {
        return "BlockNode[" + name + " " + driver.kind() + (quiesceCounter > 0 ? " drained=" + quiesceCounter : "") + "]";
    }
}
