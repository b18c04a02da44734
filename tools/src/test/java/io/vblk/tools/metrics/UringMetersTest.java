package io.vblk.tools.metrics;

import io.vblk.aio.AioContext;
import io.vblk.aio.DeferCall;
import io.vblk.aio.engine.IoRequest;
import io.vblk.aio.engine.SubmissionQueue;
import io.vblk.aio.linuxaio.LoopSteps;
import io.vblk.aio.metrics.LatencyHistogram;
import io.vblk.aio.metrics.Meter;
import io.vblk.aio.sys.FileIo;
import io.vblk.aio.uring.UringBackend;

import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import static org.assertj.core.api.Assertions.assertThat;

/** The io_uring engine's meters, bound to a real engine whose requests are made to happen. Home thread: the test's. */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
class UringMetersTest {
    @TempDir
    Path dir;
    private AioContext ctx;
    private VblkMetrics metrics;

    @BeforeEach
    void setUp() {
        metrics = new VblkMetrics();
        ctx = AioContext.forCurrentThread("uring-t");
    }

    @AfterEach
    void tearDown() {
        metrics.close();
        ctx.close();
    }

    private double v(Meter m, String... tags) {
        return metrics.value(m, tags);
    }

    @Test
    void ioUringMetersCountEntersRequestsBatchesAndShortReads() {
        SubmissionQueue engine = UringBackend.of(ctx);
        try (AioFixture f = new AioFixture(dir.resolve("img"), false, 6 * AioFixture.BLOCK)) {
            Binding b = metrics.bindIoUring(engine);
            String t = "uring-t";
            // 8 writes in one section: one submit of 8; the file grows to 8 blocks.
            f.writeBatch(engine, 8);
            assertThat(v(Meter.URING_ENTER_CALLS, t)).isEqualTo(1);
            assertThat(v(Meter.URING_SUBMITTED, t)).isEqualTo(8);
            LatencyHistogram.Snapshot batches = metrics.histogramSnapshot(Meter.URING_SUBMIT_BATCH, t);
            assertThat(batches.count()).isEqualTo(1);
            assertThat(batches.quantile(1.0)).isEqualTo(8);
            LoopSteps.pollUntil(ctx, () -> f.completed == 8, "8 writes");
            assertThat(v(Meter.URING_COMPLETED, t)).isEqualTo(8);
            assertThat(v(Meter.URING_IN_FLIGHT, t)).isZero();
            assertThat(v(Meter.URING_EAGAIN, t)).isZero();
            assertThat(v(Meter.URING_RESUBMITS, t, "eagain")).isZero();

            // Cut the file to 7.5 blocks: a read of the last block is short, the ring asks again.
            assertThat(FileIo.ftruncate(f.fd, 7L * AioFixture.BLOCK + 2048)).isZero();
            f.completed = 0;
            DeferCall dc = ctx.deferCall();
            dc.begin();
            engine.submit(new IoRequest().readv(f.fd, f.iov(), 1, 7L * AioFixture.BLOCK, f.done), 0);
            dc.end();
            LoopSteps.pollUntil(ctx, () -> f.completed == 1, "short read");
            assertThat(f.lastResult).isEqualTo(2048);
            assertThat(v(Meter.URING_RESUBMITS, t, "short_read")).isEqualTo(1);
            assertThat(v(Meter.GUARD_SUBMIT_MAX_DEPTH, t, "io_uring")).isGreaterThanOrEqualTo(1);
            assertThat(v(Meter.GUARD_SUBMIT_CAP_HITS, t, "io_uring")).isZero();

            // Bound once per engine: a second binding shares the meters; both must close.
            Binding again = metrics.bindIoUring(engine);
            again.close();
            assertThat(v(Meter.URING_SUBMITTED, t)).isEqualTo(9);
            b.close();
        } finally {
            engine.release();
        }
        assertThat(v(Meter.URING_SUBMITTED, "uring-t")).as("unbound with the last binding").isNaN();
    }
}
