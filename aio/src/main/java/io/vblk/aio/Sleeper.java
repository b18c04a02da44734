package io.vblk.aio;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * Sleep with early wake, as QEMU's co-sleep ({@code qemu_co_sleep_ns_wakeable} /
 * {@code qemu_co_sleep_wake}): a periodic task {@link #sleep}s for a duration and its
 * {@code onWake} callback runs when the time is up or, earlier, when any thread calls
 * {@link #wake()}. Shutdown paths wake the task so that closing completes in bounded time.
 *
 * <p>Home thread: the owning context's for {@link #sleep}; {@link #wake()} from any thread.
 *
 * <p>The lost wake-up of seed 001: the waker reads the sleeper's state, sees it not (yet) asleep
 * and skips the kick, while the sleeper, which already decided to sleep, arms its timer and
 * sleeps its full time — forever, if that is long. The guard makes the wake a state transition:
 * a wake that finds the sleeper awake is recorded (WOKEN) and ends the next sleep at once, and the
 * sleeper enters SLEEPING by compare-and-set, so one of the two always sees the other. With
 * {@link Guard#WAKE_ORDER} off, {@link #wake()} takes the stale fast path instead.
 */
public final class Sleeper {
    private static final int IDLE = 0;
    private static final int SLEEPING = 1;
    private static final int WOKEN = 2;
    private static final VarHandle STATE;

    static {
        try {
            STATE = MethodHandles.lookup().findVarHandle(Sleeper.class, "state", int.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private final AioContext ctx;
    private final Runnable onWake;
    private final Timer timer;
    private final Bh wakeBh;
    @SuppressWarnings("unused") // accessed through STATE
    private volatile int state;
    private long wakesBeforeSleep;
    private long earlyWakes;

    public Sleeper(AioContext ctx, String name, Runnable onWake) {
        this.ctx = ctx;
        this.onWake = onWake;
        this.timer = ctx.timer(name + ".sleep", this::timeUp);
        this.wakeBh = ctx.bh(name + ".wake", this::woken);
    }

    /**
     * Sleeps for {@code nanos}; {@code onWake} runs on the home thread when the time is up or on an
     * earlier {@link #wake()} — at once (through a bottom half) if a wake arrived since the last
     * one was consumed. Home thread.
     */
    public void sleep(long nanos) {
        ctx.assertHome();
        if ((int) STATE.getVolatile(this) == SLEEPING) {
            throw new IllegalStateException("already sleeping");
        }
        timer.armIn(nanos);
        if (ctx.guard(Guard.WAKE_ORDER)) {
            // Publish "asleep" with a CAS so a concurrent wake() either saw IDLE and left WOKEN
            // (seen here) or sees SLEEPING (and schedules wakeBh). Pairs with the CAS in wake().
            if (!STATE.compareAndSet(this, IDLE, SLEEPING)) {
                // A wake arrived before we were asleep: consume it now instead of losing it.
                wakesBeforeSleep++;
                // State stays WOKEN; woken() moves it to IDLE and cancels the timer.
                wakeBh.schedule();
            }
        } else {
            STATE.setVolatile(this, SLEEPING);
        }
    }

    /** Ends the current sleep early, or the next one if none is under way. Any thread. */
    public void wake() {
        if (!ctx.guard(Guard.WAKE_ORDER)) {
            // Seed 001's fast path: kick only a sleeper seen asleep. A sleeper that has decided to
            // sleep but not yet published it misses this wake.
            if ((int) STATE.getVolatile(this) == SLEEPING) {
                STATE.setVolatile(this, WOKEN);
                wakeBh.schedule();
            }
            return;
        }
        for (;;) {
            int s = (int) STATE.getVolatile(this);
            if (s == WOKEN) {
                return;
            }
            if (STATE.compareAndSet(this, s, WOKEN)) {
                if (s == SLEEPING) {
                    wakeBh.schedule();
                }
                return;
            }
        }
    }

    public boolean sleeping() {
        return (int) STATE.getVolatile(this) == SLEEPING;
    }

    /** Wakes that arrived while the task was awake and ended its next sleep at once. */
    public long wakesBeforeSleep() {
        return wakesBeforeSleep;
    }

    /** Sleeps ended early by a wake. */
    public long earlyWakes() {
        return earlyWakes;
    }

    private void timeUp() {
        if (STATE.compareAndSet(this, SLEEPING, IDLE)) {
            onWake.run();
        }
        // else: a wake won the race; wakeBh finishes the sleep.
    }

    private void woken() {
        if (STATE.compareAndSet(this, WOKEN, IDLE)) {
            timer.cancel();
            earlyWakes++;
            onWake.run();
        }
    }
}
