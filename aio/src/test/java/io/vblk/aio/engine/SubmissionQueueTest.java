package io.vblk.aio.engine;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.DeferCall;
import io.vblk.aio.Guard;
import io.vblk.aio.NanoClock;
import io.vblk.aio.sys.Errno;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * Step tests of the one submission queue against a scripted backend: every submit answer (how
 * many taken, EAGAIN, an error) and every completion is chosen by the test, so each step's effect
 * is asserted exactly.
 */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class SubmissionQueueTest {
    private static final long RESULT = 4096;

    /** A backend whose answers the test scripts; completions wait in {@link #running} until finished. */
    static class ScriptedBackend implements EngineBackend {
        final int capacity;
        /** Complete every taken request inside submit (like io_submit on the page cache). */
        boolean inline;
        /** Answers for the next submit calls: a count taken (clamped to n) or -errno; empty = take all. */
        final ArrayDeque<Integer> answers = new ArrayDeque<>();
        final List<IoRequest> running = new ArrayList<>();
        final ArrayDeque<IoRequest> finished = new ArrayDeque<>();
        final List<Integer> offered = new ArrayList<>();
        int overCapacity;
        boolean closed;
        EngineBackend.Queue queue;

        ScriptedBackend(int capacity) {
            this.capacity = capacity;
        }

        @Override
        public String kind() {
            return "scripted";
        }

        @Override
        public void attach(EngineBackend.Queue q) {
            queue = q;
        }

        @Override
        public int capacity() {
            return capacity;
        }

        @Override
        public int submit(IoRequest first, int n) {
            offered.add(n);
            if (n > capacity - running.size() - finished.size()) {
                overCapacity++;
            }
            Integer a = answers.poll();
            int take = a == null ? n : a;
            if (take < 0) {
                return take;
            }
            take = Math.min(take, n);
            IoRequest r = first;
            for (int i = 0; i < take; i++, r = r.nextQueued()) {
                (inline ? finished : running).add(r);
            }
            return take;
        }

        @Override
        public void reap(EngineBackend.Queue q) {
            IoRequest r;
            while ((r = finished.poll()) != null) { // the cursor moves before the callback
                q.completed(r, RESULT);
            }
        }

        /** Finishes the {@code k} oldest running requests (they are reaped at the next pass). */
        void finish(int k) {
            for (int i = 0; i < k; i++) {
                finished.add(running.remove(0));
            }
        }

        @Override
        public void close() {
            closed = true;
        }
    }

    /** Counts completions per request so a double or lost completion shows. */
    static final class Counting implements IoRequest.Completion {
        int count;
        int doubles;
        long lastResult;

        @Override
        public void aioCompleted(IoRequest req, long result) {
            if (req.ownerWord != 0) {
                doubles++;
            }
            req.ownerWord = 1;
            count++;
            lastResult = result;
        }
    }

    private AioContext ctx;
    private DeferCall dc;

    @BeforeEach
    void setUp() {
        ctx = AioContext.forCurrentThread("sq-test");
        dc = ctx.deferCall();
    }

    @AfterEach
    void tearDown() {
        ctx.close();
    }

    private static IoRequest[] requests(int n, IoRequest.Completion c) {
        IoRequest[] rs = new IoRequest[n];
        for (int i = 0; i < n; i++) {
            rs[i] = new IoRequest().readv(3, 0, 1, (long) i * RESULT, c);
        }
        return rs;
    }

    @Test
    void oneSubmitPerSectionAndAtOnceWhenTheBatchLimitIsReached() {
        ScriptedBackend be = new ScriptedBackend(100);
        SubmissionQueue q = new SubmissionQueue(ctx, be);
        Counting done = new Counting();
        IoRequest[] rs = requests(10, done);
        dc.begin();
        for (int i = 0; i < 10; i++) {
            q.submit(rs[i], 4);
            // Batches of the driver's limit 4 go down as soon as they are full.
            assertThat(be.offered).hasSize((i + 1) / 4);
        }
        assertThat(q.queued()).isEqualTo(2);
        dc.end();
        assertThat(be.offered).containsExactly(4, 4, 2);
        assertThat(q.submitCalls()).isEqualTo(3);
        assertThat(q.inFlight()).isEqualTo(10);
        be.finish(10);
        q.completionEvent();
        assertThat(done.count).isEqualTo(10);
        assertThat(done.doubles).isZero();
        q.release();
        assertThat(be.closed).isTrue();
    }

    @Test
    void theContextsAioMaxBatchCapsTheDriversLimit() {
        ctx.close();
        ctx = new AioContext("sq-batch", Thread.currentThread(), NanoClock.SYSTEM,
                AioOptions.DEFAULT.withAioMaxBatch(3));
        dc = ctx.deferCall();
        ScriptedBackend be = new ScriptedBackend(100);
        SubmissionQueue q = new SubmissionQueue(ctx, be);
        IoRequest[] rs = requests(7, new Counting());
        dc.begin();
        for (IoRequest r : rs) {
            q.submit(r, 32);
        }
        dc.end();
        assertThat(be.offered).containsExactly(3, 3, 1);
        be.finish(7);
        q.completionEvent();
        q.release();
    }

    @Test
    void eagainBlocksTheQueueUntilACompletionFreesRoom() {
        ScriptedBackend be = new ScriptedBackend(100);
        SubmissionQueue q = new SubmissionQueue(ctx, be);
        Counting done = new Counting();
        IoRequest[] rs = requests(6, done);
        be.answers.add(2);              // a short count: the kernel stopped at the third
        be.answers.add(-Errno.EAGAIN);  // and has no room for it
        dc.begin();
        for (int i = 0; i < 5; i++) {
            q.submit(rs[i], 0);
        }
        dc.end();
        assertThat(be.offered).containsExactly(5, 3);
        assertThat(q.eagainCount()).isEqualTo(1);
        assertThat(q.blocked()).isTrue();
        assertThat(q.inFlight()).isEqualTo(2);
        assertThat(q.queued()).isEqualTo(3);
        // Blocked: a new request only queues; no submit is tried for it.
        q.submit(rs[5], 1);
        assertThat(be.offered).hasSize(2);
        assertThat(q.queued()).isEqualTo(4);
        // One completion frees room: the pass completes it, then the queue is resubmitted.
        be.finish(1);
        q.completionEvent();
        assertThat(done.count).isEqualTo(1);
        assertThat(be.offered).containsExactly(5, 3, 4);
        assertThat(q.blocked()).isFalse();
        assertThat(q.inFlight()).isEqualTo(5);
        be.finish(5);
        q.completionEvent();
        assertThat(done.count).isEqualTo(6);
        assertThat(done.doubles).isZero();
        q.release();
    }

    @Test
    void eagainWithNothingInFlightIsRetriedByTheCompletionBottomHalf() {
        ScriptedBackend be = new ScriptedBackend(100);
        SubmissionQueue q = new SubmissionQueue(ctx, be);
        Counting done = new Counting();
        be.answers.add(-Errno.EAGAIN);
        dc.begin();
        for (IoRequest r : requests(3, done)) {
            q.submit(r, 0);
        }
        dc.end();
        assertThat(q.blocked()).isTrue();
        assertThat(q.inFlight()).isZero();
        // No completion will come; the bottom half scheduled for this case retries.
        assertThat(ctx.poll(false)).isTrue();
        assertThat(q.completionBhRuns()).isEqualTo(1);
        assertThat(be.offered).containsExactly(3, 3);
        assertThat(q.blocked()).isFalse();
        be.finish(3);
        q.completionEvent();
        assertThat(done.count).isEqualTo(3);
        q.release();
    }

    @Test
    void aFullBackendBlocksWithoutCountingEagain() {
        ScriptedBackend be = new ScriptedBackend(4);
        SubmissionQueue q = new SubmissionQueue(ctx, be);
        Counting done = new Counting();
        dc.begin();
        for (IoRequest r : requests(10, done)) {
            q.submit(r, 0);
        }
        dc.end();
        assertThat(q.inFlight()).isEqualTo(4);
        assertThat(q.queued()).isEqualTo(6);
        assertThat(q.blocked()).isTrue();
        assertThat(q.eagainCount()).isZero();
        while (done.count < 10) {
            be.finish(be.running.size());
            q.completionEvent();
        }
        assertThat(be.overCapacity).isZero();
        assertThat(be.offered).allMatch(n -> n <= 4);
        assertThat(done.doubles).isZero();
        q.release();
    }

    @Test
    void anErrorFailsTheFirstRequestAndTheRestAreRetried() {
        ScriptedBackend be = new ScriptedBackend(100);
        SubmissionQueue q = new SubmissionQueue(ctx, be);
        Counting good = new Counting();
        Counting bad = new Counting();
        IoRequest r1 = new IoRequest().readv(3, 0, 1, 0, bad);
        IoRequest r2 = new IoRequest().readv(3, 0, 1, RESULT, good);
        IoRequest r3 = new IoRequest().readv(3, 0, 1, 2 * RESULT, good);
        be.answers.add(-Errno.EBADF);
        dc.begin();
        q.submit(r1, 0);
        q.submit(r2, 0);
        q.submit(r3, 0);
        dc.end();
        assertThat(be.offered).containsExactly(3, 2);
        assertThat(bad.count).isEqualTo(1);
        assertThat(bad.lastResult).isEqualTo(-Errno.EBADF);
        assertThat(q.submitErrors()).isEqualTo(1);
        assertThat(q.inFlight()).isEqualTo(2);
        be.finish(2);
        q.completionEvent();
        assertThat(good.count).isEqualTo(2);
        assertThat(good.lastResult).isEqualTo(RESULT);
        assertThat(q.completedRequests()).isEqualTo(3);
        q.release();
    }

    /** Each completion submits the next request at once (seed 000's closed loop). */
    private static final class ClosedLoop implements IoRequest.Completion {
        final SubmissionQueue q;
        final int total;
        final int stopAtDepth;
        int issued;
        int completed;

        ClosedLoop(SubmissionQueue q, int total, int stopAtDepth) {
            this.q = q;
            this.total = total;
            this.stopAtDepth = stopAtDepth;
        }

        void start(IoRequest r) {
            issued++;
            q.submit(r.readv(3, 0, 1, 0, this), 32);
        }

        @Override
        public void aioCompleted(IoRequest req, long result) {
            completed++;
            if (issued < total && q.submitGuard().depth() < stopAtDepth) {
                start(req);
            }
        }
    }

    @Test
    void inlineCompletionsAreCappedAtTheDepthAndTheBottomHalfDrainsTheRest() {
        ScriptedBackend be = new ScriptedBackend(100);
        be.inline = true;
        SubmissionQueue q = new SubmissionQueue(ctx, be);
        ClosedLoop loop = new ClosedLoop(q, 100, Integer.MAX_VALUE);
        dc.begin();
        loop.start(new IoRequest());
        dc.end();
        // The cycle stopped at the cap; what it left waits for the bottom half.
        assertThat(q.maxSubmitDepth()).isEqualTo(SubmitGuard.DEFAULT_CAP);
        assertThat(q.submitCapHits()).isEqualTo(1);
        assertThat(q.submitGuard().depth()).isZero();
        assertThat(loop.completed).isEqualTo(SubmitGuard.DEFAULT_CAP);
        assertThat(q.queued()).isEqualTo(1);
        long passes = 0;
        while (loop.completed < 100) {
            assertThat(ctx.poll(false)).as("the completion bottom half is scheduled").isTrue();
            assertThat(++passes).isLessThan(100);
        }
        // Each run of the bottom half completes up to the cap's worth before the cap stops it again.
        int left = 100 - SubmitGuard.DEFAULT_CAP;
        assertThat(q.completionBhRuns()).isEqualTo((left + SubmitGuard.DEFAULT_CAP - 1) / SubmitGuard.DEFAULT_CAP);
        assertThat(passes).isLessThanOrEqualTo(q.completionBhRuns());
        assertThat(q.maxSubmitDepth()).isEqualTo(SubmitGuard.DEFAULT_CAP);
        assertThat(loop.completed).isEqualTo(loop.issued);
        assertThat(q.inFlight() + q.queued()).isZero();
        assertThat(ctx.poll(false)).as("nothing left scheduled").isFalse();
        q.release();
    }

    @Test
    void withTheGuardOffInlineCompletionsRecurseInOneFrame() {
        ctx.setGuard(Guard.SUBMIT_DEPTH, false);
        ScriptedBackend be = new ScriptedBackend(100);
        be.inline = true;
        SubmissionQueue q = new SubmissionQueue(ctx, be);
        ClosedLoop loop = new ClosedLoop(q, 100, 40);
        dc.begin();
        loop.start(new IoRequest());
        dc.end();
        assertThat(q.maxSubmitDepth()).isEqualTo(40);
        assertThat(q.submitCapHits()).isZero();
        assertThat(loop.completed).isEqualTo(loop.issued);
        q.release();
    }

    @Test
    void unsupportedOperationsGoToTheFallbackEngine() {
        ScriptedBackend fb = new ScriptedBackend(10);
        SubmissionQueue fallback = new SubmissionQueue(ctx, fb);
        ScriptedBackend be = new ScriptedBackend(10) {
            @Override
            public boolean supports(int op) {
                return op != IoRequest.FALLOCATE;
            }

            @Override
            public IoEngine openFallback() {
                return fallback;
            }
        };
        SubmissionQueue q = new SubmissionQueue(ctx, be);
        Counting done = new Counting();
        q.submit(new IoRequest().fallocate(3, 0, 0, RESULT, done), 0);
        assertThat(fb.offered).containsExactly(1);
        assertThat(be.offered).isEmpty();
        assertThat(q.inFallback()).isEqualTo(1);
        assertThatThrownBy(q::release).hasMessageContaining("drain first");
        fb.finish(1);
        fallback.completionEvent();
        assertThat(done.count).isEqualTo(1);
        q.release();
        assertThat(fb.closed).as("the fallback's reference went with the queue").isTrue();
    }

    @Test
    void sharedEnginesAreRefcountedPerContext() {
        Object key = new Object();
        ScriptedBackend[] made = new ScriptedBackend[2];
        int[] n = {0};
        SubmissionQueue a = SubmissionQueue.shared(ctx, key, c -> made[n[0]++] = new ScriptedBackend(4));
        SubmissionQueue b = SubmissionQueue.shared(ctx, key, c -> made[n[0]++] = new ScriptedBackend(4));
        assertThat(b).isSameAs(a);
        assertThat(SubmissionQueue.peekShared(ctx, key)).isSameAs(a);
        b.release();
        assertThat(made[0].closed).isFalse();
        a.release();
        assertThat(made[0].closed).isTrue();
        assertThat(SubmissionQueue.peekShared(ctx, key)).isNull();
        assertThatThrownBy(a::release).hasMessageContaining("more often");
    }

    @ParameterizedTest(name = "seed {0}")
    @ValueSource(longs = {1, 2, 3, 42, 1234})
    void noRequestIsLostOrCompletedTwiceWhateverTheBackendAnswers(long seed) {
        System.out.println("SubmissionQueueTest seed " + seed);
        SplittableRandom rnd = new SplittableRandom(seed);
        ScriptedBackend be = new ScriptedBackend(1 + rnd.nextInt(16));
        SubmissionQueue q = new SubmissionQueue(ctx, be);
        int total = 2000;
        int[] perReq = new int[total];
        int[] failed = {0};
        IoRequest.Completion c = (req, res) -> {
            perReq[(int) req.ownerWord]++;
            if (res < 0) {
                failed[0]++;
            }
        };
        int next = 0;
        int steps = 0;
        while (next < total || q.inFlight() + q.queued() > 0) {
            assertThat(++steps).as("progress").isLessThan(100_000);
            be.inline = rnd.nextInt(4) == 0;
            for (int i = 0; i < 3; i++) {
                int a = rnd.nextInt(10);
                be.answers.add(a < 2 ? -Errno.EAGAIN : a < 3 ? -Errno.EIO : a < 5 ? rnd.nextInt(4) : 64);
            }
            switch (rnd.nextInt(3)) {
                case 0 -> { // a section of submissions
                    dc.begin();
                    int k = rnd.nextInt(8);
                    for (int i = 0; i < k && next < total; i++, next++) {
                        IoRequest r = new IoRequest().readv(3, 0, 1, 0, c);
                        r.ownerWord = next;
                        q.submit(r, 1 + rnd.nextInt(8));
                    }
                    dc.end();
                }
                case 1 -> { // the kernel finishes some
                    be.finish(rnd.nextInt(be.running.size() + 1));
                    q.completionEvent();
                }
                default -> ctx.poll(false); // the completion bottom half, when scheduled
            }
            be.answers.clear();
            assertThat(be.overCapacity).isZero();
        }
        assertThat(perReq).containsOnly(1);
        assertThat(q.completedRequests()).isEqualTo(total);
        assertThat(q.submitErrors()).isEqualTo(failed[0]);
        q.release();
    }
}
