package io.vblk.aio;

import io.vblk.aio.sys.EventFds;
import io.vblk.aio.sys.FileIo;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Duration;

import static org.assertj.core.api.Assertions.assertThat;

/** {@link AioContext#waitWhile} and where listeners live: the mechanism of seed 004. */
@Timeout(30)
class NestedWaitTest {
    private AioContext ctx;
    private int efd = -1;

    @AfterEach
    void close() {
        if (ctx != null) {
            ctx.close();
        }
        if (efd >= 0) {
            FileIo.close(efd);
        }
    }

    private int readyEventFd() {
        efd = EventFds.eventfd(0, EventFds.EFD_NONBLOCK | EventFds.EFD_CLOEXEC);
        assertThat(EventFds.eventfdWrite(efd, 1)).isZero();
        return efd;
    }

    @Test
    void aNestedWaitDispatchesTheContextsOwnHandlers() {
        ctx = AioContext.forCurrentThread("nested");
        boolean[] seen = {false};
        ctx.addFdHandler("plain", readyEventFd(), fd -> {
            EventFds.eventfdRead(fd);
            seen[0] = true;
        });
        assertThat(ctx.waitWhile(() -> !seen[0], Duration.ofSeconds(10))).isTrue();
        assertThat(ctx.nestedWaits()).isEqualTo(1);
        assertThat(ctx.nestedWaitTimeouts()).isZero();
    }

    @Test
    void withTheGuardOnAListenerIsOnTheAioContextAndANestedWaitAcceptsThroughIt() {
        ctx = AioContext.forCurrentThread("guarded");
        boolean[] seen = {false};
        FdHandler h = ctx.addListener("listener", readyEventFd(), fd -> {
            EventFds.eventfdRead(fd);
            seen[0] = true;
        });
        assertThat(h.mainLoopOnly()).isFalse();
        assertThat(ctx.waitWhile(() -> !seen[0], Duration.ofSeconds(10))).isTrue();
    }

    @Test
    void withTheGuardOffAListenerIsAMainLoopSourceThatANestedWaitNeverDispatches() {
        ctx = AioContext.forCurrentThread("unguarded");
        ctx.setGuard(Guard.NO_BLOCKING_WAIT, false);
        boolean[] seen = {false};
        FdHandler h = ctx.addListener("listener", readyEventFd(), fd -> {
            EventFds.eventfdRead(fd);
            seen[0] = true;
        });
        assertThat(h.mainLoopOnly()).isTrue();
        long t0 = System.nanoTime();
        assertThat(ctx.waitWhile(() -> !seen[0], Duration.ofMillis(200)))
                .as("the wait's condition needs the listener, which the nested poll never runs").isFalse();
        assertThat(System.nanoTime() - t0).as("bounded").isLessThan(Duration.ofSeconds(10).toNanos());
        assertThat(seen[0]).isFalse();
        assertThat(ctx.nestedWaitTimeouts()).isEqualTo(1);
        assertThat(h.enabled()).as("back in the input set after the wait").isTrue();
        // The loop's own iteration dispatches it.
        for (int i = 0; i < 100 && !seen[0]; i++) {
            ctx.poll(false);
        }
        assertThat(seen[0]).isTrue();
    }
}
