package io.vblk.aio;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.assertj.core.api.Assertions.assertThat;

@Timeout(value = 20, unit = TimeUnit.SECONDS)
class SleeperTest {
    private final ManualClock clock = new ManualClock();
    private final AioContext ctx = new AioContext("sleep", Thread.currentThread(), clock, AioOptions.DEFAULT);
    private final AtomicInteger wakes = new AtomicInteger();
    private final Sleeper sleeper = new Sleeper(ctx, "task", wakes::incrementAndGet);

    @AfterEach
    void close() {
        ctx.close();
    }

    @Test
    void sleepEndsWhenTimeIsUp() {
        sleeper.sleep(1_000);
        ctx.poll(false);
        assertThat(wakes).hasValue(0);
        clock.advance(1_000);
        ctx.poll(false);
        assertThat(wakes).hasValue(1);
    }

    @Test
    void wakeEndsSleepEarly() {
        sleeper.sleep(1_000_000_000_000L);
        sleeper.wake();
        ctx.poll(false);
        assertThat(wakes).hasValue(1);
        assertThat(sleeper.earlyWakes()).isEqualTo(1);
        clock.advance(2_000_000_000_000L);
        ctx.poll(false);
        assertThat(wakes).as("the timer was cancelled").hasValue(1);
    }

    @Test
    void wakeBeforeSleepIsNotLost() {
        // The waker runs while the task is between deciding to sleep and sleeping (seed 001).
        sleeper.wake();
        sleeper.sleep(1_000_000_000_000L);
        ctx.poll(false);
        assertThat(wakes).hasValue(1);
        assertThat(sleeper.wakesBeforeSleep()).isEqualTo(1);
    }

    @Test
    void withGuardOffTheEarlyWakeIsLost() {
        ctx.setGuard(Guard.WAKE_ORDER, false);
        sleeper.wake();
        sleeper.sleep(1_000_000_000_000L);
        ctx.poll(false);
        assertThat(wakes).hasValue(0);
        // Clean-up: with the guard back on a second wake ends it.
        ctx.setGuard(Guard.WAKE_ORDER, true);
        sleeper.wake();
        ctx.poll(false);
        assertThat(wakes).hasValue(1);
    }
}
