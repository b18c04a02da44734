package io.vblk.irqfd;

import io.vblk.aio.AioContext;
import io.vblk.aio.DeferCall;
import io.vblk.aio.IoThread;
import io.vblk.aio.AioOptions;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.EventFds;
import io.vblk.aio.sys.FileIo;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Guest notification through a call eventfd, batched by defer-call sections. */
@Timeout(10)
class IrqfdNotifierTest {
    AioContext ctx;
    int fd;
    boolean want = true;
    int decisions;
    IrqfdNotifier n;

    @BeforeEach
    void setUp() {
        ctx = AioContext.forCurrentThread("irqfd-test");
        fd = EventFds.eventfd(0, EventFds.EFD_NONBLOCK | EventFds.EFD_CLOEXEC);
        assertThat(fd).isPositive();
        n = new IrqfdNotifier(ctx, "q0", fd, () -> {
            decisions++;
            return want;
        });
    }

    @AfterEach
    void tearDown() {
        FileIo.close(fd);
        ctx.close();
    }

    long calls() {
        long v = EventFds.eventfdRead(fd);
        return v == -Errno.EAGAIN ? 0 : v;
    }

    @Test
    void manyRequestsInOneSectionWriteOnce() {
        DeferCall dc = ctx.deferCall();
        dc.begin();
        for (int i = 0; i < 32; i++) {
            n.notifyGuest();
        }
        assertThat(calls()).as("nothing before the section ends").isZero();
        assertThat(decisions).isZero();
        dc.end();
        assertThat(calls()).isEqualTo(1);
        assertThat(decisions).as("the queue decides once per batch").isEqualTo(1);
        assertThat(n.requested()).isEqualTo(32);
        assertThat(n.coalesced()).isEqualTo(31);
        assertThat(n.writes()).isEqualTo(1);
        assertThat(n.suppressed()).isZero();
    }

    @Test
    void onlyTheOutermostEndSends() {
        DeferCall dc = ctx.deferCall();
        dc.begin();
        n.notifyGuest();
        dc.begin();
        n.notifyGuest();
        dc.end();
        assertThat(calls()).isZero();
        dc.end();
        assertThat(calls()).isEqualTo(1);
    }

    @Test
    void outsideASectionEachRequestSendsAtOnce() {
        n.notifyGuest();
        n.notifyGuest();
        assertThat(calls()).isEqualTo(2);
        assertThat(n.writes()).isEqualTo(2);
        assertThat(n.coalesced()).isZero();
    }

    @Test
    void successiveSectionsEachSendOnce() {
        DeferCall dc = ctx.deferCall();
        for (int s = 0; s < 3; s++) {
            dc.begin();
            n.notifyGuest();
            n.notifyGuest();
            dc.end();
        }
        assertThat(calls()).isEqualTo(3);
        assertThat(n.writes()).isEqualTo(3);
    }

    @Test
    void theGuestsFlagsSuppressTheWrite() {
        want = false;
        DeferCall dc = ctx.deferCall();
        dc.begin();
        n.notifyGuest();
        n.notifyGuest();
        dc.end();
        assertThat(calls()).isZero();
        assertThat(n.suppressed()).isEqualTo(1);
        assertThat(n.writes()).isZero();
    }

    @Test
    void noCallFdMeansNoWrite() {
        n.setCallFd(-1);
        n.notifyGuest();
        assertThat(n.skippedNoFd()).isEqualTo(1);
        assertThat(n.writes()).isZero();
        n.setCallFd(fd);
        n.notifyGuest();
        assertThat(calls()).isEqualTo(1);
    }

    @Test
    void aFailedWriteIsCountedNotThrown() {
        int other = EventFds.eventfd(0, EventFds.EFD_NONBLOCK | EventFds.EFD_CLOEXEC);
        FileIo.close(other);
        n.setCallFd(other); // closed: EBADF
        n.notifyGuest();
        assertThat(n.writeErrors()).isEqualTo(1);
        assertThat(n.lastError()).isEqualTo(Errno.EBADF);
    }

    @Test
    void otherThreadsAreRefused() throws Exception {
        try (IoThread t = IoThread.start("other", AioOptions.DEFAULT)) {
            var f = t.ctx().callOn(() -> {
                n.notifyGuest();
                return null;
            });
            // A plain bounded get: this thread's own context has nothing to do for the answer.
            assertThatThrownBy(() -> f.get(5, TimeUnit.SECONDS))
                    .isInstanceOf(ExecutionException.class).hasCauseInstanceOf(IllegalStateException.class);
        }
        assertThat(n.requested()).isZero();
    }

    @Test
    void aNotificationFromTheDeferredRunItselfIsNotLost() {
        // A deferred function that completes more work (and notifies) after our send ran in the
        // same end(): the notifier must send again, not think it is still pending.
        AtomicBoolean again = new AtomicBoolean(true);
        DeferCall.Fn<IrqfdNotifier> late = x -> {
            if (again.getAndSet(false)) {
                x.notifyGuest();
            }
        };
        DeferCall dc = ctx.deferCall();
        dc.begin();
        n.notifyGuest();
        dc.defer(late, n);
        dc.end();
        assertThat(calls()).isEqualTo(2);
    }
}
