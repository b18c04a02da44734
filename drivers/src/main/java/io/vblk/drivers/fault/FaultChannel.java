package io.vblk.drivers.fault;

import io.vblk.aio.AioContext;
import io.vblk.aio.Bh;
import io.vblk.aio.DeferCall;
import io.vblk.aio.Timer;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.ChannelBase;
import io.vblk.drivers.IoCompletion;
import io.vblk.drivers.IoVec;

import java.lang.foreign.Arena;
import java.util.SplittableRandom;

/**
 * Home thread: the owning IoThread. No locking.
 *
 * <p>A {@link FaultDriver}'s path on one context: evaluates the rules per request and forwards the
 * request to the inner channel through a pooled shadow request (its own {@link BlockIo}, so the
 * inner driver's scratch fields and completion never touch the caller's request).
 */
final class FaultChannel extends ChannelBase {
    /** The inner request and its link back to the caller's. */
    private static final class Shadow {
        final BlockIo inner;
        BlockIo outer;
        long deadline;
        long result;
        Shadow next;

        Shadow(Arena arena) {
            inner = new BlockIo(arena, 1024); // IOV_MAX: any caller's request fits
            inner.owner = this;
        }
    }

    private final BlockChannel inner;
    private final FaultRule.State[] rules;
    private final SplittableRandom random;
    private final BlkdebugRules blkdebug;
    private final Arena arena = Arena.ofShared();
    private final IoCompletion innerDone = this::innerDone;
    private final Bh errorBh;
    private final Timer delayTimer;
    private Shadow free;
    private Shadow errHead;
    private Shadow errTail;
    /** Delayed requests, earliest deadline first. */
    private Shadow delayHead;
    private long injected;

    FaultChannel(AioContext ctx, FaultDriver d, BlockChannel inner) {
        super(ctx, d);
        this.inner = inner;
        this.rules = new FaultRule.State[d.rules().size()];
        for (int i = 0; i < rules.length; i++) {
            rules[i] = new FaultRule.State(d.rules().get(i));
        }
        this.random = new SplittableRandom(d.seed());
        this.blkdebug = d.blkdebug();
        this.errorBh = ctx.bh("fault-errors", this::completeErrors);
        this.delayTimer = ctx.timer("fault-delays", this::releaseDelayed);
    }

    private Shadow take(BlockIo outer) {
        Shadow s = free;
        if (s == null) {
            s = new Shadow(arena); // only while the pool grows to the workload
        } else {
            free = s.next;
            s.next = null;
        }
        s.outer = outer;
        return s;
    }

    @Override
    protected void start(BlockIo io) {
        BlkdebugRules.InjectError bd = blkdebug == null ? null : blkdebug.check(io);
        if (bd != null) {
            injected++;
            if (bd.immediately()) {
                complete(io, -bd.errno()); // blkdebug's immediately=on: inside submit
            } else {
                queueError(take(io), bd.errno());
            }
            return;
        }
        FaultRule fired = null;
        for (FaultRule.State st : rules) {
            if (st.fires(io, random)) {
                fired = st.rule;
                break;
            }
        }
        Shadow s = take(io);
        if (fired == null) {
            forward(s, Long.MAX_VALUE);
            return;
        }
        injected++;
        switch (fired.action()) {
            case ERROR -> queueError(s, fired.errno());
            case SHORT -> forward(s, fired.shortBytes());
            case DELAY -> {
                s.deadline = ctx.now() + fired.delayNanos();
                Shadow prev = null;
                Shadow cur = delayHead;
                while (cur != null && cur.deadline <= s.deadline) {
                    prev = cur;
                    cur = cur.next;
                }
                s.next = cur;
                if (prev == null) {
                    delayHead = s;
                    delayTimer.armAt(s.deadline);
                } else {
                    prev.next = s;
                }
            }
        }
    }

    /** Completes {@code s} with -{@code errno} from the error bottom half. */
    private void queueError(Shadow s, int errno) {
        s.result = -errno;
        if (errTail == null) {
            errHead = s;
        } else {
            errTail.next = s;
        }
        errTail = s;
        errorBh.schedule();
    }

    /** Copies the caller's request into the shadow (reads cut to {@code limit} bytes) and submits it. */
    private void forward(Shadow s, long limit) {
        BlockIo o = s.outer;
        BlockIo i = s.inner;
        if (o.op == BlockIo.READ || o.op == BlockIo.WRITE) {
            i.rw(o.op, o.offset, innerDone);
            i.flags = o.flags;
            if (limit >= o.iov.totalLength()) {
                i.iov.addAll(o.iov);
            } else {
                copyPrefix(o.iov, i.iov, limit);
            }
        } else {
            i.range(o.op, o.offset, o.length, o.flags, innerDone);
        }
        inner.submit(i);
    }

    private static void copyPrefix(IoVec from, IoVec to, long limit) {
        for (int k = 0, n = from.count(); k < n && limit > 0; k++) {
            long len = Math.min(from.length(k), limit);
            to.add(from.base(k), len);
            limit -= len;
        }
    }

    private void innerDone(BlockIo io, long result) {
        finish((Shadow) io.owner, result);
    }

    private void finish(Shadow s, long result) {
        BlockIo outer = s.outer;
        s.outer = null;
        s.next = free;
        free = s;
        complete(outer, result);
    }

    private void completeErrors() {
        Shadow list = errHead;
        errHead = null;
        errTail = null;
        DeferCall dc = ctx.deferCall();
        dc.begin();
        try {
            while (list != null) {
                Shadow s = list;
                list = s.next;
                s.next = null;
                finish(s, s.result);
            }
        } finally {
            dc.end();
        }
    }

    private void releaseDelayed() {
        long now = ctx.now();
        DeferCall dc = ctx.deferCall();
        dc.begin(); // the released requests go down in one batch
        try {
            while (delayHead != null && delayHead.deadline - now <= 0) {
                Shadow s = delayHead;
                delayHead = s.next;
                s.next = null;
                forward(s, Long.MAX_VALUE);
            }
            if (delayHead != null) {
                delayTimer.armAt(delayHead.deadline);
            }
        } finally {
            dc.end();
        }
    }

    /** Requests a rule fired on. */
    long injected() {
        return injected;
    }

    @Override
    protected void release() {
        errorBh.delete();
        delayTimer.cancel();
        inner.close();
        free = null;
        arena.close();
    }
}
