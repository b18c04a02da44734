package io.vblk.aio;

/**
 * Home thread: the owning context's for {@link #sleep}; {@link #wake()} from any thread.
 *
 * <p>Sleep with early wake, as QEMU's co-sleep ({@code qemu_co_sleep_ns_wakeable} /
 * {@code qemu_co_sleep_wake}): a periodic task {@link #sleep}s for a duration and its
 * {@code onWake} callback runs when the time is up or, earlier, when any thread calls
 * {@link #wake()}. Shutdown paths wake the task so that closing completes in bounded time.
 *
 * <p>The lost wake-up of seed 001: the waker reads the sleeper's state, sees it not (yet) asleep
 * and skips the kick, while the sleeper, which already decided to sleep, arms its timer and
 * sleeps its full time — forever, if that is long. The guard ({@link SleepState}) makes the wake a
 * state transition that the sleeper's own transition cannot miss. With {@link Guard#WAKE_ORDER}
 * off, {@link #wake()} takes the stale fast path instead.
 */
public final class Sleeper {
    private final AioContext ctx;
    private final Runnable onWake;
    private final Timer timer;
    private final Bh wakeBh;
    private final SleepState state = new SleepState();
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
        if (state.sleeping()) {
            throw new IllegalStateException("already sleeping");
        }
        timer.armIn(nanos);
        if (!ctx.guard(Guard.WAKE_ORDER)) {
            state.enterSleepUnguarded();
        } else if (!state.enterSleep()) {
            // A wake arrived before we were asleep: end this sleep now instead of losing it.
            wakesBeforeSleep++;
            wakeBh.schedule();
        }
    }

    /** Ends the current sleep early, or the next one if none is under way. Any thread. */
    public void wake() {
        boolean kick = ctx.guard(Guard.WAKE_ORDER) ? state.wake() : state.wakeFastPath();
        if (kick) {
            wakeBh.schedule();
        }
    }

    /**
     * Releases the timer and bottom half; the sleeper must not be sleeping. A later {@link #wake()}
     * finds it awake and kicks nothing. Home thread.
     */
    public void close() {
        ctx.assertHome();
        timer.cancel();
        wakeBh.delete();
    }

    public boolean sleeping() {
        return state.sleeping();
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
        if (state.timeUp()) {
            onWake.run();
        }
        // else: a wake won the race; wakeBh finishes the sleep.
    }

    private void woken() {
        if (state.consumeWake()) {
            timer.cancel();
            earlyWakes++;
            onWake.run();
        }
    }
}
