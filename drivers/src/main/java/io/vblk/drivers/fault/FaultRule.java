package io.vblk.drivers.fault;

import io.vblk.aio.sys.Errno;
import io.vblk.drivers.BlockIo;

import java.util.SplittableRandom;

/**
 * Any thread (immutable).
 *
 * <p>One fault-injection rule of a {@link FaultDriver}: which requests it matches and what it does to
 * them. Immutable; the per-channel counters live in {@link State}.
 *
 * <p>Matching: the operation is in {@link #opMask}; the request's byte range overlaps
 * {@code [rangeStart, rangeEnd)}; then, counting only requests that passed those two tests, it is
 * the {@code nth} one (if set), a multiple of {@code every} (if set), passes the {@code prob}
 * draw, and the rule has fired fewer than {@code count} times.
 *
 * @param opMask     bit {@code 1 << BlockIo.op} per operation matched
 * @param rangeStart first byte matched
 * @param rangeEnd   first byte past the matched range
 * @param nth        fire on the nth matching request only (1-based); 0 = any
 * @param every      fire on every n-th matching request; 0 = every one
 * @param prob       probability of firing, 0..1
 * @param count      fire at most this many times; 0 = no limit
 * @param action     what to do
 * @param errno      ERROR: the positive errno to complete with
 * @param shortBytes SHORT: how many bytes a read transfers
 * @param delayNanos DELAY: how long the request waits before it goes to the inner driver
 */
public record FaultRule(int opMask, long rangeStart, long rangeEnd, long nth, long every, double prob, long count,
                        Action action, int errno, long shortBytes, long delayNanos) {

    public enum Action { ERROR, SHORT, DELAY }

    public static final int ALL_OPS = (1 << BlockIo.READ) | (1 << BlockIo.WRITE) | (1 << BlockIo.FLUSH)
            | (1 << BlockIo.DISCARD) | (1 << BlockIo.WRITE_ZEROES) | (1 << BlockIo.SECURE_ERASE);

    public FaultRule {
        if (opMask == 0 || (opMask & ~ALL_OPS) != 0) {
            throw new IllegalArgumentException("fault rule: op set is empty or unknown");
        }
        if (rangeStart < 0 || rangeEnd <= rangeStart) {
            throw new IllegalArgumentException("fault rule: range must be START-END with 0 <= START < END");
        }
        if (nth < 0 || every < 0 || count < 0) {
            throw new IllegalArgumentException("fault rule: nth, every and count must be >= 0");
        }
        if (!(prob >= 0 && prob <= 1)) {
            throw new IllegalArgumentException("fault rule: prob must be within 0..1, got " + prob);
        }
        switch (action) {
            case ERROR -> {
                if (errno <= 0) {
                    throw new IllegalArgumentException("fault rule: error needs a positive errno");
                }
            }
            case SHORT -> {
                if (shortBytes < 0) {
                    throw new IllegalArgumentException("fault rule: short must be >= 0 bytes");
                }
                if (opMask != (1 << BlockIo.READ)) {
                    throw new IllegalArgumentException("fault rule: short applies to reads only; add op:read");
                }
            }
            case DELAY -> {
                if (delayNanos <= 0) {
                    throw new IllegalArgumentException("fault rule: delay must be > 0");
                }
            }
        }
    }

    /** A rule failing every matching request with {@code errno}. */
    public static FaultRule error(int opMask, long rangeStart, long rangeEnd, int errno) {
        return new FaultRule(opMask, rangeStart, rangeEnd, 0, 0, 1, 0, Action.ERROR, errno, 0, 0);
    }

    public static int opBit(int op) {
        return 1 << op;
    }

    @Override
    public String toString() {
        String what = switch (action) {
            case ERROR -> "error:" + Errno.name(errno);
            case SHORT -> "short:" + shortBytes;
            case DELAY -> "delay:" + delayNanos + "ns";
        };
        return "rule[ops=0x" + Integer.toHexString(opMask) + " range=" + rangeStart + "-" + rangeEnd
                + (nth > 0 ? " nth=" + nth : "") + (every > 0 ? " every=" + every : "")
                + (prob < 1 ? " prob=" + prob : "") + (count > 0 ? " count=" + count : "") + " " + what + "]";
    }

    /**
     * A rule's counters on one channel.
     *
     * <p>Home thread: the owning IoThread of the channel. No locking.
     */
    static final class State {
        final FaultRule rule;
        long matched;
        long fired;

        State(FaultRule rule) {
            this.rule = rule;
        }

        boolean fires(BlockIo io, SplittableRandom random) {
            FaultRule r = rule;
            if ((r.opMask & (1 << io.op)) == 0) {
                return false;
            }
            long len = Math.max(1, io.byteLength()); // a flush "touches" its offset
            if (io.offset >= r.rangeEnd || io.offset + len <= r.rangeStart) {
                return false;
            }
            matched++;
            if (r.nth > 0 && matched != r.nth) {
                return false;
            }
            if (r.every > 0 && matched % r.every != 0) {
                return false;
            }
            if (r.count > 0 && fired >= r.count) {
                return false;
            }
            if (r.prob < 1 && random.nextDouble() >= r.prob) {
                return false;
            }
            fired++;
            return true;
        }
    }
}
