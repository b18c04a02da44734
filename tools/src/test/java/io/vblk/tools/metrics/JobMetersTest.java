package io.vblk.tools.metrics;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.IoThread;
import io.vblk.drivers.job.Job;
import io.vblk.drivers.job.JobListener;
import io.vblk.drivers.job.Jobs;
import io.vblk.drivers.job.MirrorJob;
import io.vblk.drivers.job.OnError;
import io.vblk.drivers.node.BlockNode;
import io.vblk.drivers.nullblk.NullDriver;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;

import static org.assertj.core.api.Assertions.assertThat;

/** Any thread (test code). A mirror's progress and bytes copied in the Prometheus scrape while it exists. */
@Timeout(60)
class JobMetersTest {
    private static final Duration T = Duration.ofSeconds(30);

    @Test
    void aMirrorsProgressIsScrapedUntilItIsDismissed() throws Exception {
        IoThread main = IoThread.start("main", AioOptions.DEFAULT);
        try (VblkMetrics metrics = new VblkMetrics()) {
            AioContext m = main.ctx();
            CompletableFuture<Void> ready = new CompletableFuture<>();
            CompletableFuture<Void> gone = new CompletableFuture<>();
            MirrorJob job = AioContext.await(m.callOn(() -> {
                Jobs jobs = new Jobs(m);
                jobs.addListener(new JobMeters(metrics));
                jobs.addListener(new JobListener() {
                    @Override
                    public void ready(Job j) {
                        ready.complete(null);
                    }

                    @Override
                    public void statusChanged(Job j) {
                        if (j.status() == io.vblk.drivers.job.JobStatus.NULL) {
                            gone.complete(null);
                        }
                    }
                });
                BlockNode s = new BlockNode("s", new NullDriver(1 << 20, NullDriver.Completion.ASYNC), m);
                BlockNode t = new BlockNode("t", new NullDriver(1 << 20, NullDriver.Completion.ASYNC), m);
                return jobs.start(new MirrorJob(jobs, "m0", s, t, 0, 65536, OnError.REPORT, OnError.REPORT, true, true));
            }), T);
            AioContext.await(ready, T);
            long deadline = System.nanoTime() + T.toNanos();
            while (AioContext.await(m.callOn(job::currentProgress), T) < (1 << 20)) {
                assertThat(System.nanoTime()).as("the whole node copied").isLessThan(deadline);
            }
            String body = metrics.scrape(null).body();
            assertThat(body).contains("vblk_job_progress_bytes{job=\"m0\",type=\"mirror\"} 1048576.0")
                    .contains("vblk_job_total_bytes{job=\"m0\",type=\"mirror\"} 1048576.0")
                    .contains("vblk_job_copied_bytes_total{job=\"m0\",type=\"mirror\"} 1048576.0");
            AioContext.await(m.callOn(() -> {
                job.userComplete();
                return null;
            }), T);
            AioContext.await(gone, T);
            assertThat(metrics.scrape(null).body()).doesNotContain("vblk_job_progress_bytes{");
        } finally {
            main.close();
        }
    }
}
