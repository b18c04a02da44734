package io.vblk.drivers.fault;

import io.vblk.drivers.BlockIo;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;

/**
 * Any thread: the rules are immutable; the state and the "spent" marks of {@code once} rules are
 * atomics shared by every channel of the driver (QEMU keeps them per node, under a lock).
 *
 * <p>QEMU's {@code blkdebug} rule engine (block/blkdebug.c) as far as it fits vblk: the
 * {@code inject-error} rules (event, state, iotype, errno, sector, once, immediately) and the
 * {@code set-state} rules (event, state, new_state) of a {@code --blockdev driver=blkdebug}. The
 * state starts at 1; a rule whose {@code state} is 0 applies in every state.
 *
 * <p>Events: a request raises the events QEMU's raw format and block layer raise for it on the
 * blkdebug node, in this order: a read {@code read_aio}; a write {@code write_aio} then
 * {@code pwritev}; a write-zeroes {@code pwritev_zero}; a flush {@code flush_to_os} then
 * {@code flush_to_disk}; a discard none (QEMU has no discard event). The other QEMU events (qcow2
 * metadata, copy-on-read, vmstate) never happen in vblk and are refused at parse time.
 *
 * <p>One difference from QEMU, on purpose: an event arms the {@code inject-error} rules only for
 * the request that raised it. QEMU leaves them armed until another event arms others, so that a
 * rule on {@code read_aio} with the default iotype also fails the writes that follow the first
 * read; in vblk the requests of one channel and the channels of other IoThreads never see another
 * request's armed rules, which makes a run repeatable. With that, {@code iotype} selects among the
 * requests raising the event (a read_aio rule with iotype=write never fires).
 */
public final class BlkdebugRules {
    /** QEMU's BlkdebugIOType, as bits of {@link BlockIo} operations. */
    public static final int IOTYPE_DEFAULT = FaultRule.ALL_OPS;

    /** The events vblk raises (QEMU's names). */
    public enum Event {
        READ_AIO("read_aio"), WRITE_AIO("write_aio"), PWRITEV("pwritev"), PWRITEV_ZERO("pwritev_zero"),
        FLUSH_TO_OS("flush_to_os"), FLUSH_TO_DISK("flush_to_disk");

        private final String spelling;

        Event(String spelling) {
            this.spelling = spelling;
        }

        public String spelling() {
            return spelling;
        }

        /** The event named {@code name}, or null. */
        public static Event byName(String name) {
            for (Event e : values()) {
                if (e.spelling.equals(name)) {
                    return e;
                }
            }
            return null;
        }

        /** The spellings, for messages. */
        public static String names() {
            List<String> l = new ArrayList<>();
            for (Event e : values()) {
                l.add(e.spelling);
            }
            return String.join(", ", l);
        }
    }

    /**
     * One {@code inject-error} rule.
     *
     * @param state       fires only in this state; 0 = any
     * @param iotypeMask  bit {@code 1 << BlockIo.op} per operation it fails ({@link #IOTYPE_DEFAULT})
     * @param errno       the positive errno the request fails with (QEMU's default EIO)
     * @param sector      fires only for a request covering this 512-byte sector; -1 = any (a flush
     *                    covers none, so only -1 fails a flush, as in QEMU)
     * @param once        the rule is removed after it fired
     * @param immediately the request completes inside submit, else from a bottom half
     */
    public record InjectError(Event event, int state, int iotypeMask, int errno, long sector, boolean once,
                              boolean immediately) {
        public InjectError {
            if (event == null) {
                throw new IllegalArgumentException("inject-error: event is required; accepts " + Event.names());
            }
            if (state < 0 || errno <= 0 || sector < -1 || iotypeMask == 0 || (iotypeMask & ~FaultRule.ALL_OPS) != 0) {
                throw new IllegalArgumentException("inject-error: state >= 0, errno > 0, sector >= -1 and a known"
                        + " iotype are required");
            }
        }
    }

    /** One {@code set-state} rule: in {@code state} (0 = any), {@code event} moves to {@code newState}. */
    public record SetState(Event event, int state, int newState) {
        public SetState {
            if (event == null) {
                throw new IllegalArgumentException("set-state: event is required; accepts " + Event.names());
            }
            if (state < 0 || newState < 0) {
                throw new IllegalArgumentException("set-state: state and new_state must be >= 0");
            }
        }
    }

    private static final Event[] NONE = {};
    private static final Event[] READ = {Event.READ_AIO};
    private static final Event[] WRITE = {Event.WRITE_AIO, Event.PWRITEV};
    private static final Event[] ZEROES = {Event.PWRITEV_ZERO};
    private static final Event[] FLUSH = {Event.FLUSH_TO_OS, Event.FLUSH_TO_DISK};

    private final List<InjectError> inject;
    private final List<SetState> setState;
    private final InjectError[] injectArr;
    private final SetState[] setArr;
    private final AtomicInteger state = new AtomicInteger(1);
    private final AtomicIntegerArray spent;

    public BlkdebugRules(List<InjectError> inject, List<SetState> setState) {
        this.inject = List.copyOf(inject);
        this.setState = List.copyOf(setState);
        this.injectArr = this.inject.toArray(new InjectError[0]);
        this.setArr = this.setState.toArray(new SetState[0]);
        this.spent = new AtomicIntegerArray(injectArr.length);
    }

    public List<InjectError> inject() {
        return inject;
    }

    public List<SetState> setState() {
        return setState;
    }

    /** The current state (starts at 1). */
    public int state() {
        return state.get();
    }

    /** The events {@code op} raises, in order. */
    static Event[] eventsOf(int op) {
        return switch (op) {
            case BlockIo.READ -> READ;
            case BlockIo.WRITE -> WRITE;
            case BlockIo.WRITE_ZEROES -> ZEROES;
            case BlockIo.FLUSH -> FLUSH;
            default -> NONE;
        };
    }

    /**
     * Raises {@code io}'s events: applies the set-state rules and returns the inject-error rule that
     * fails it, or null. No allocation.
     */
    InjectError check(BlockIo io) {
        InjectError fired = null;
        for (Event ev : eventsOf(io.op)) {
            int old = state.get();
            if (fired == null) {
                fired = armed(ev, old, io);
            }
            int next = old;
            for (SetState s : setArr) {
                if (s.event == ev && (s.state == 0 || s.state == old)) {
                    next = s.newState;
                }
            }
            if (next != old) {
                state.compareAndSet(old, next); // another channel's event may have moved it first
            }
        }
        return fired;
    }

    private InjectError armed(Event ev, int st, BlockIo io) {
        for (int i = 0; i < injectArr.length; i++) {
            InjectError r = injectArr[i];
            if (r.event != ev || (r.state != 0 && r.state != st) || (r.iotypeMask & (1 << io.op)) == 0) {
                continue;
            }
            if (r.sector >= 0) {
                long at = r.sector << 9;
                long len = io.byteLength();
                if (len == 0 || at < io.offset || at - io.offset >= len) {
                    continue;
                }
            }
            if (r.once && !spent.compareAndSet(i, 0, 1)) {
                continue;
            }
            return r;
        }
        return null;
    }

    @Override
    public String toString() {
        return "blkdebug[inject-error=" + inject + " set-state=" + setState + "]";
    }
}
