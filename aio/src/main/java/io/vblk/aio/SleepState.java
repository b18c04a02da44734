package io.vblk.aio;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * Any thread for {@link #wake()} and {@link #wakeFastPath()}; the sleeper's thread for the rest.
 *
 * <p>The state machine behind {@link Sleeper}: IDLE → SLEEPING by the sleeper, → WOKEN by any waker,
 * → IDLE when the sleep ends. A wake that finds the sleeper awake leaves WOKEN behind, so the
 * sleeper's next {@link #enterSleep()} fails and it does not sleep: neither side can miss the
 * other, whatever the interleaving (seed 001). {@link #wakeFastPath()} is the unguarded variant
 * that reads the state and skips the kick when the sleeper is not yet asleep.
 */
public final class SleepState {
    static final int IDLE = 0;
    static final int SLEEPING = 1;
    static final int WOKEN = 2;
    private static final VarHandle STATE;

    static {
        try {
            STATE = MethodHandles.lookup().findVarHandle(SleepState.class, "state", int.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    @SuppressWarnings("unused") // accessed through STATE
    private volatile int state;

    /**
     * Sleeper: publishes "asleep". Returns false when a wake arrived first; the state then stays
     * WOKEN and the caller must end the sleep at once ({@link #consumeWake()}). Pairs with the CAS
     * in {@link #wake()}.
     */
    public boolean enterSleep() {
        return STATE.compareAndSet(this, IDLE, SLEEPING);
    }

    /** Sleeper, unguarded: publishes "asleep" whatever happened before. */
    public void enterSleepUnguarded() {
        STATE.setVolatile(this, SLEEPING);
    }

    /**
     * Waker: returns true when the sleeper is asleep and must be kicked; false when it was awake
     * (the wake is then recorded and ends its next sleep) or already woken.
     */
    public boolean wake() {
        for (;;) {
            int s = (int) STATE.getVolatile(this);
            if (s == WOKEN) {
                return false;
            }
            if (STATE.compareAndSet(this, s, WOKEN)) {
                return s == SLEEPING;
            }
        }
    }

    /** Waker, unguarded (seed 001's fast path): kicks only a sleeper it sees asleep, records nothing otherwise. */
    public boolean wakeFastPath() {
        if ((int) STATE.getVolatile(this) == SLEEPING) {
            STATE.setVolatile(this, WOKEN);
            return true;
        }
        return false;
    }

    /** Sleeper: the time is up. True when it ended the sleep (no wake won the race). */
    public boolean timeUp() {
        return STATE.compareAndSet(this, SLEEPING, IDLE);
    }

    /** Sleeper: a wake ended the sleep. True when there was one to consume. */
    public boolean consumeWake() {
        return STATE.compareAndSet(this, WOKEN, IDLE);
    }

    public boolean sleeping() {
        return (int) STATE.getVolatile(this) == SLEEPING;
    }
}
