package io.vblk.drivers.fault;

import io.vblk.aio.AioContext;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.ForwardingBlockDriver;

import java.util.List;

/**
 * Any thread for the accessors; {@link #openChannel} on the context's home thread.
 *
 * <p>Wraps another driver and injects faults by {@link FaultRule}: errors (the request never reaches
 * the inner driver and completes with -errno from a bottom half), short reads (the inner driver
 * reads fewer bytes and that count is the result), and delays (the request waits on a timer
 * before it goes to the inner driver). The first rule that fires decides; a request no rule fires
 * on passes through unchanged. For tests, and for users who test their guests' error handling.
 *
 * <p>Counters (nth, every, count) and the random draws (seeded with {@link #seed()}) are per
 * channel, so one channel's run is repeatable whatever the others do.
 */
public final class FaultDriver extends ForwardingBlockDriver {
    private final List<FaultRule> rules;
    private final long seed;
    private final BlkdebugRules blkdebug;

    public FaultDriver(BlockDriver inner, List<FaultRule> rules, long seed) {
        this(inner, rules, seed, null);
    }

    /** With QEMU blkdebug rules ({@code blkdebug} non-null), checked before {@code rules}. */
    public FaultDriver(BlockDriver inner, List<FaultRule> rules, long seed, BlkdebugRules blkdebug) {
        super(inner);
        this.rules = List.copyOf(rules);
        this.seed = seed;
        this.blkdebug = blkdebug;
    }

    /** The blkdebug rules, or null. */
    public BlkdebugRules blkdebug() {
        return blkdebug;
    }

    public List<FaultRule> rules() {
        return rules;
    }

    public long seed() {
        return seed;
    }

    @Override
    public String kind() {
        return blkdebug == null ? "fault" : "blkdebug";
    }

    @Override
    public BlockChannel openChannel(AioContext ctx) {
        return new FaultChannel(ctx, this, inner.openChannel(ctx));
    }

    @Override
    public String toString() {
        return "fault:" + rules + (blkdebug == null ? "" : " " + blkdebug) + " seed=" + seed + " inner=" + inner;
    }
}
