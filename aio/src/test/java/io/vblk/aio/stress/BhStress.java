package io.vblk.aio.stress;

import io.vblk.aio.Bh;
import io.vblk.aio.BhQueue;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Arbiter;
import org.openjdk.jcstress.annotations.Description;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.II_Result;
import org.openjdk.jcstress.infra.results.I_Result;

import java.util.concurrent.atomic.AtomicLong;

import static org.openjdk.jcstress.annotations.Expect.ACCEPTABLE;
import static org.openjdk.jcstress.annotations.Expect.FORBIDDEN;

/** jcstress tests of bottom-half scheduling: idempotent, never lost, never run twice for one schedule. */
public final class BhStress {
    private BhStress() {
    }

    @JCStressTest
    @Description("Two threads schedule the same bottom half: it runs exactly once.")
    @Outcome(id = "1", expect = ACCEPTABLE, desc = "the two schedules merged")
    @Outcome(expect = FORBIDDEN, desc = "lost or run twice")
    @State
    public static class DoubleSchedule {
        int runs;
        final BhQueue q = new BhQueue(null, () -> { });
        final Bh bh = q.newBh("b", "stress", () -> runs++);

        @Actor
        public void a1() {
            bh.schedule();
        }

        @Actor
        public void a2() {
            bh.schedule();
        }

        @Arbiter
        public void check(I_Result r) {
            q.runAll();
            r.r1 = runs;
        }
    }

    @JCStressTest
    @Description("A schedule races the home thread dispatching the same (already queued) bottom half.")
    @Outcome(id = "1, 0", expect = ACCEPTABLE, desc = "the new schedule merged into the queued one")
    @Outcome(id = "1, 1", expect = ACCEPTABLE, desc = "the new schedule came after dispatch and re-queued it")
    @Outcome(expect = FORBIDDEN, desc = "the queued run was lost, or one schedule ran twice")
    @State
    public static class ScheduleVersusDispatch {
        int runs;
        final BhQueue q = new BhQueue(null, () -> { });
        final Bh bh = q.newBh("b", "stress", () -> runs++);

        public ScheduleVersusDispatch() {
            bh.schedule();
        }

        @Actor
        public void scheduler() {
            bh.schedule();
        }

        @Actor
        public void home(II_Result r) {
            q.runAll();
            r.r1 = runs;
        }

        @Arbiter
        public void check(II_Result r) {
            int before = runs;
            q.runAll();
            r.r2 = runs - before;
        }
    }

    @JCStressTest
    @Description("The loop decides to block while another thread schedules: Netty's wake-up handshake "
            + "(nextWakeupNanos, getAndSet(AWAKE) before the eventfd write) plus the loop's re-check of the queue.")
    @Outcome(id = "0, 0", expect = ACCEPTABLE, desc = "loop saw the bottom half and does not block; no eventfd write")
    @Outcome(id = "0, 1", expect = ACCEPTABLE, desc = "loop does not block; a spare eventfd write")
    @Outcome(id = "1, 1", expect = ACCEPTABLE, desc = "loop blocks and the eventfd write wakes it")
    @Outcome(id = "1, 0", expect = FORBIDDEN, desc = "loop blocks with work queued and nobody wakes it")
    @State
    public static class BlockVersusSchedule {
        static final long AWAKE = -1;
        final AtomicLong nextWakeup = new AtomicLong(AWAKE);
        volatile int eventfdWrites;
        final BhQueue q = new BhQueue(null, () -> {
            if (nextWakeup.getAndSet(AWAKE) != AWAKE) {
                eventfdWrites++;
            }
        });
        final Bh bh = q.newBh("b", "stress", () -> { });

        @Actor
        public void otherThread() {
            bh.schedule();
        }

        @Actor
        public void loop(II_Result r) {
            nextWakeup.set(123_456_789L); // publish the deadline, as EpollIoHandler.run does
            r.r1 = q.hasPending() ? 0 : 1; // canBlock() re-check, then epoll_wait when true
        }

        @Arbiter
        public void check(II_Result r) {
            r.r2 = eventfdWrites;
        }
    }
}
