package io.vblk.drivers.job;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.IoThread;
import org.junit.jupiter.api.AfterEach;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletionException;

/**
 * Any thread (test code); the jobs live on a main-loop IoThread and every step runs there.
 *
 * <p>The shared fixture of the job tests: the main loop, its {@link Jobs}, the event list the
 * tests' listeners fill (on the main loop), and the calls that run a step there.
 */
abstract class MainLoopJobsTest {
    protected final IoThread main = IoThread.start("main", AioOptions.DEFAULT);
    private final Duration wait;
    protected final Jobs jobs;
    protected final List<String> events = new ArrayList<>();

    /** @param wait how long a step on the main loop may take */
    protected MainLoopJobsTest(Duration wait) {
        this.wait = wait;
        this.jobs = on(() -> new Jobs(main.ctx()));
    }

    @AfterEach
    void closeMainLoop() {
        main.close();
    }

    /** Runs {@code c} on the main loop; its exception is rethrown as it was thrown. */
    protected final <T> T on(Callable<T> c) {
        try {
            return AioContext.await(main.ctx().callOn(c), wait);
        } catch (CompletionException e) {
            if (e.getCause() instanceof RuntimeException r) {
                throw r;
            }
            throw e;
        }
    }

    protected final void run(Runnable r) {
        on(() -> {
            r.run();
            return null;
        });
    }

    /** A listener that records each status change ({@link JobStatus#qapi()}) in {@link #events}; on the main loop. */
    protected class StatusRecorder implements JobListener {
        @Override
        public void statusChanged(Job job) {
            events.add(job.status().qapi());
        }
    }

    /** The events so far, read on the main loop where they are recorded. */
    protected final List<String> events() {
        return on(() -> List.copyOf(events));
    }
}
