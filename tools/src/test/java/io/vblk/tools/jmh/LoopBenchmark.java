package io.vblk.tools.jmh;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.Bh;
import io.vblk.aio.DeferCall;
import io.vblk.aio.IoThread;
import io.vblk.aio.NanoClock;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.util.concurrent.TimeUnit;

/**
 * The event loop's fixed costs: one non-blocking iteration with nothing to do, a bottom half
 * scheduled and run on the home thread, a cross-thread hand-over (schedule from another thread,
 * loop wakes, runs it, hands back), and a defer-call section with a coalesced pair.
 *
 * <p>Run: {@code scripts/jmh.sh LoopBenchmark -prof gc}
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class LoopBenchmark {

    /** A context stepped by the benchmark thread itself. */
    @State(Scope.Thread)
    public static class Local {
        AioContext ctx;
        Bh bh;
        DeferCall dc;
        final DeferCall.Fn<Local> fn = l -> l.runs++;
        long runs;

        @Setup(Level.Trial)
        public void setup() {
            ctx = new AioContext("bench", Thread.currentThread(), NanoClock.SYSTEM, AioOptions.DEFAULT);
            bh = ctx.bh("bench", () -> runs++);
            dc = ctx.deferCall();
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            ctx.close();
        }
    }

    @Benchmark
    public boolean emptyIteration(Local s) {
        return s.ctx.poll(false);
    }

    @Benchmark
    public boolean scheduleAndRunBh(Local s) {
        s.bh.schedule();
        return s.ctx.poll(false);
    }

    @Benchmark
    public long deferCallSection(Local s) {
        s.dc.begin();
        s.dc.defer(s.fn, s);
        s.dc.defer(s.fn, s);
        s.dc.end();
        return s.runs;
    }

    /** A bottom half on an IoThread, scheduled from this thread; the IoThread answers with one back. */
    @State(Scope.Thread)
    public static class Remote {
        IoThread io;
        Bh ping;
        volatile long pongs;

        @Setup(Level.Trial)
        public void setup() {
            io = IoThread.start("bench-io", AioOptions.DEFAULT);
            ping = io.ctx().bh("ping", () -> pongs++);
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            io.close();
        }
    }

    @Benchmark
    public long crossThreadHandOver(Remote s) {
        long before = s.pongs;
        s.ping.schedule();
        while (s.pongs == before) {
            Thread.onSpinWait();
        }
        return s.pongs;
    }
}
