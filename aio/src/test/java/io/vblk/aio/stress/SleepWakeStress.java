package io.vblk.aio.stress;

import io.vblk.aio.SleepState;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Description;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.II_Result;

import static org.openjdk.jcstress.annotations.Expect.ACCEPTABLE;
import static org.openjdk.jcstress.annotations.Expect.ACCEPTABLE_INTERESTING;
import static org.openjdk.jcstress.annotations.Expect.FORBIDDEN;

/** jcstress tests of the sleep/wake protocol (seed 001). r1: 1 = went to sleep; r2: 1 = waker kicked. */
public final class SleepWakeStress {
    private SleepWakeStress() {
    }

    @JCStressTest
    @Description("Guarded: the sleeper's arming races a wake; the wake is never lost.")
    @Outcome(id = "1, 1", expect = ACCEPTABLE, desc = "asleep first, the waker kicks it")
    @Outcome(id = "0, 0", expect = ACCEPTABLE, desc = "wake first, recorded; the sleeper does not sleep")
    @Outcome(id = "1, 0", expect = FORBIDDEN, desc = "lost wake-up: asleep and never kicked")
    @Outcome(expect = FORBIDDEN, desc = "impossible")
    @State
    public static class Guarded {
        final SleepState st = new SleepState();

        @Actor
        public void sleeper(II_Result r) {
            r.r1 = st.enterSleep() ? 1 : 0;
        }

        @Actor
        public void waker(II_Result r) {
            r.r2 = st.wake() ? 1 : 0;
        }
    }

    @JCStressTest
    @Description("Unguarded (seed 001's fast path): the waker skips the kick when the sleeper is not yet asleep.")
    @Outcome(id = "1, 1", expect = ACCEPTABLE, desc = "asleep first, kicked")
    @Outcome(id = "1, 0", expect = ACCEPTABLE_INTERESTING, desc = "the lost wake-up of seed 001")
    @Outcome(expect = FORBIDDEN, desc = "impossible")
    @State
    public static class Unguarded {
        final SleepState st = new SleepState();

        @Actor
        public void sleeper(II_Result r) {
            st.enterSleepUnguarded();
            r.r1 = 1;
        }

        @Actor
        public void waker(II_Result r) {
            r.r2 = st.wakeFastPath() ? 1 : 0;
        }
    }
}
