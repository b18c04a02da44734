package io.vblk.aio;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Step tests of the busy-poll hooks (QEMU's poll_set_started / run_poll_handlers): each step is one
 * {@code poll(true)}; a blocking step is released by an eventfd signalled before it, which the spin
 * does not look at, so the loop reaches epoll_wait only after the window and the end of polling.
 */
@Timeout(value = 20, unit = TimeUnit.SECONDS)
class PollHooksTest {
    /** Large enough that no wait on a loaded machine shrinks the window during a test. */
    private static final long POLL_MAX_NS = TimeUnit.SECONDS.toNanos(30);

    private final List<String> events = new ArrayList<>();
    private AioContext ctx;
    private TestEventFd wake;

    @BeforeEach
    void open() {
        ctx = new AioContext("hooks", Thread.currentThread(), NanoClock.SYSTEM, new AioOptions(POLL_MAX_NS, 2, 2, 0));
        wake = new TestEventFd();
        ctx.addFdHandler("wake", wake.fd(), fd -> {
            wake.drain();
            events.add("fd");
        });
    }

    @AfterEach
    void close() throws Exception {
        ctx.close();
        wake.close();
    }

    /** A hook whose ring holds {@code work} items; each poll takes one. */
    private final class Ring {
        final String name;
        int work;
        boolean notifications = true;
        int begins;
        int ends;
        int polls;
        PollHandler handler;
        Runnable beforePoll = () -> { };

        Ring(String name) {
            this.name = name;
            handler = ctx.addPollHandler(name, this::poll, this::begin, this::end);
        }

        boolean poll() {
            beforePoll.run();
            polls++;
            if (work > 0) {
                work--;
                events.add(name + ".work");
                return true;
            }
            return false;
        }

        void begin() {
            begins++;
            notifications = false;
            events.add(name + ".begin");
        }

        void end() {
            ends++;
            notifications = true;
            events.add(name + ".end");
        }
    }

    /** Opens the window: one short wait (shorter than poll-max-ns) grows it from 0 to its 4 us start. */
    private void openWindow() {
        ctx.adjustPollWindow(1_000, false);
        assertThat(ctx.pollWindowNanos()).isEqualTo(Poller.POLL_START_NS);
    }

    @Test
    void beginRunsOncePerStartedPeriodAndEndWithALastPollBeforeTheBlock() {
        Ring q = new Ring("q");
        openWindow();
        q.work = 3;
        for (int i = 0; i < 3; i++) {
            assertThat(ctx.poll(true)).as("step %d: the window finds the item", i).isTrue();
            assertThat(ctx.pollStarted()).isTrue();
        }
        assertThat(q.begins).as("polling stays started across windows that find work").isEqualTo(1);
        assertThat(q.ends).isZero();
        assertThat(q.notifications).isFalse();
        assertThat(ctx.pollHits()).isEqualTo(3);

        // Nothing left: the window spins out, polling ends (notifications back on), the last poll
        // finds nothing, and only then does the loop block (released by the eventfd).
        int pollsBefore = q.polls;
        wake.signal();
        assertThat(ctx.poll(true)).isTrue();
        assertThat(ctx.pollStarted()).isFalse();
        assertThat(q.ends).isEqualTo(1);
        assertThat(q.notifications).isTrue();
        assertThat(q.polls - pollsBefore).as("window polls plus the last one").isGreaterThanOrEqualTo(2);
        assertThat(events).endsWith("q.end", "fd");
        assertThat(ctx.pollMisses()).isEqualTo(1);

        // A new started period begins again, once.
        q.work = 1;
        openWindowIfShrunk();
        assertThat(ctx.poll(true)).isTrue();
        assertThat(q.begins).isEqualTo(2);
        assertThat(events).endsWith("q.begin", "q.work");
    }

    /** The wait above (a few microseconds) may have grown the window; it never shrinks below start here. */
    private void openWindowIfShrunk() {
        assertThat(ctx.pollWindowNanos()).isGreaterThanOrEqualTo(Poller.POLL_START_NS);
    }

    @Test
    void workArrivingBetweenTheLastWindowPollAndTheReEnableIsTakenWithoutBlocking() {
        Ring q = new Ring("q");
        Ring other = new Ring("other");
        openWindow();
        q.work = 1;
        assertThat(ctx.poll(true)).isTrue();
        assertThat(q.begins).isEqualTo(1);
        // The guest adds a buffer while notifications are still off (it sees NO_NOTIFY and does not
        // kick): it lands after the window's last poll, during the re-enable.
        PollHandler h = q.handler;
        h.remove();
        q.handler = ctx.addPollHandler("q", q::poll, q::begin, () -> {
            q.end();
            q.work++; // arrived before notifications were back on: no kick for it
        });
        // The re-registered hook began in no window yet: open one so it does.
        assertThat(ctx.poll(true)).as("the window finds nothing, the last poll finds the buffer").isTrue();
        assertThat(events).as("no eventfd was needed: the loop did not block")
                .doesNotContain("fd").endsWith("q.end", "q.work");
        assertThat(q.work).isZero();
        assertThat(other.ends).as("every begun hook ends").isEqualTo(1);
        assertThat(ctx.pollStarted()).isFalse();
    }

    @Test
    void removingAHandlerWhileStartedEndsItAndNeverPollsItAgain() {
        Ring b = new Ring("b"); // polled before a
        Ring a = new Ring("a");
        openWindow();
        a.work = 1;
        assertThat(ctx.poll(true)).isTrue();
        assertThat(a.begins).isEqualTo(1);
        assertThat(b.begins).isEqualTo(1);

        // b's poll removes a in the middle of a window: a's end runs at once (begin and end pair),
        // and a is polled neither later in that window nor in the last poll before the block.
        int[] aPollsAtRemoval = {-1};
        b.beforePoll = () -> {
            if (!a.handler.removed) {
                a.handler.remove();
                aPollsAtRemoval[0] = a.polls;
            }
        };
        a.work = 5;
        wake.signal();
        assertThat(ctx.poll(true)).isTrue();
        assertThat(aPollsAtRemoval[0]).isNotNegative();
        assertThat(a.ends).isEqualTo(1);
        assertThat(a.notifications).isTrue();
        assertThat(a.polls).as("never polled after removal").isEqualTo(aPollsAtRemoval[0]);
        assertThat(a.work).isEqualTo(5);
        assertThat(events).endsWith("b.end", "fd");
        assertThat(b.ends).isEqualTo(1);
        assertThat(ctx.pollStarted()).isFalse();

        // Removing a handler while polling is not started runs no end.
        b.handler.remove();
        assertThat(b.ends).isEqualTo(1);
    }

    @Test
    void windowGrowsAndShrinksAsQemus() {
        pollMax32us();
        ctx.adjustPollWindow(1_000, false);
        assertThat(ctx.pollWindowNanos()).isEqualTo(4_000);
        ctx.adjustPollWindow(3_000, false);
        assertThat(ctx.pollWindowNanos()).as("a wait within the window: the sweet spot").isEqualTo(4_000);
        ctx.adjustPollWindow(20_000, false);
        assertThat(ctx.pollWindowNanos()).as("poll-grow 0 means 2").isEqualTo(8_000);
        ctx.adjustPollWindow(31_000, false);
        ctx.adjustPollWindow(31_000, false);
        assertThat(ctx.pollWindowNanos()).isEqualTo(32_000);
        ctx.adjustPollWindow(31_000, false);
        assertThat(ctx.pollWindowNanos()).as("never beyond poll-max-ns").isEqualTo(32_000);
        ctx.adjustPollWindow(33_000, false);
        assertThat(ctx.pollWindowNanos()).as("poll-shrink 0: back to 0, as QEMU").isZero();
    }

    /**
     * A wait that slept includes the loop's own wake-up: up to twice poll-max-ns it grows the window
     * (else a loop that slept once would never poll again), beyond that it shrinks it.
     */
    @Test
    void aWaitThatSleptShrinksTheWindowOnlyBeyondTwicePollMaxNs() {
        pollMax32us();
        ctx.adjustPollWindow(45_000, true);
        assertThat(ctx.pollWindowNanos()).as("slept 45 us: the window opens").isEqualTo(4_000);
        ctx.adjustPollWindow(60_000, true);
        assertThat(ctx.pollWindowNanos()).isEqualTo(8_000);
        ctx.adjustPollWindow(45_000, false);
        assertThat(ctx.pollWindowNanos()).as("a wait caught without sleeping: QEMU's rule").isZero();
        ctx.adjustPollWindow(45_000, true);
        ctx.adjustPollWindow(65_000, true);
        assertThat(ctx.pollWindowNanos()).as("slept beyond twice poll-max-ns").isZero();
    }

    /** A context with poll-max-ns 32 us, QEMU's grow and shrink defaults, and one idle ring handler. */
    private void pollMax32us() {
        ctx.close();
        ctx = new AioContext("hooks", Thread.currentThread(), NanoClock.SYSTEM, new AioOptions(32_000, 0, 0, 0));
        ctx.addPollHandler("ring", () -> false);
    }
}
