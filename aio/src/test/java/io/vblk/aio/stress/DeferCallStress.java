package io.vblk.aio.stress;

import io.vblk.aio.DeferCall;
import org.openjdk.jcstress.annotations.Actor;
import org.openjdk.jcstress.annotations.Description;
import org.openjdk.jcstress.annotations.JCStressTest;
import org.openjdk.jcstress.annotations.Outcome;
import org.openjdk.jcstress.annotations.State;
import org.openjdk.jcstress.infra.results.II_Result;

import static org.openjdk.jcstress.annotations.Expect.ACCEPTABLE;
import static org.openjdk.jcstress.annotations.Expect.FORBIDDEN;

/** jcstress test: defer-call sections are per thread; two threads batching the same object never mix. */
public final class DeferCallStress {
    private DeferCallStress() {
    }

    @JCStressTest
    @Description("Two threads each queue the same (fn, obj) twice in a section of their own.")
    @Outcome(id = "1, 1", expect = ACCEPTABLE, desc = "each thread's section ran its pair once")
    @Outcome(expect = FORBIDDEN, desc = "sections leaked across threads")
    @State
    public static class PerThreadSections {
        final Object shared = new Object();
        int a;
        int b;
        final DeferCall.Fn<Object> incA = o -> a++;
        final DeferCall.Fn<Object> incB = o -> b++;

        @Actor
        public void t1(II_Result r) {
            DeferCall dc = DeferCall.current();
            dc.begin();
            dc.defer(incA, shared);
            dc.defer(incA, shared);
            dc.end();
            r.r1 = a;
        }

        @Actor
        public void t2(II_Result r) {
            DeferCall dc = DeferCall.current();
            dc.begin();
            dc.defer(incB, shared);
            dc.defer(incB, shared);
            dc.end();
            r.r2 = b;
        }
    }
}
