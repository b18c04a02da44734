package io.vblk.virtio.vhost;

import io.vblk.aio.sys.EventFds;
import io.vblk.aio.sys.FileIo;
import io.vblk.virtio.vhost.wire.VhostUserCodec;
import io.vblk.virtio.vhost.wire.VhostUserMessage;
import io.vblk.virtio.vhost.wire.VhostUserRequest;
import org.junit.jupiter.api.AutoClose;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Kick, call and error fds that are not eventfds (the hostile front-end's /dev/null and directory
 * cases) are refused at SET_VRING_KICK / CALL / ERR: the connection closes with a reason naming the
 * fd, the export takes the next connection, and an eventfd is still accepted.
 */
@Timeout(value = 60, unit = TimeUnit.SECONDS)
class VringFdValidationTest {

    @TempDir
    Path dir;
    @AutoClose
    private VhostRig rig;
    private String sock;
    private BlockingQueue<String> reasons;

    @BeforeEach
    void setUp() {
        rig = new VhostRig(dir);
        VhostRig.Served served = rig.serve("null:size=1M", 1, 1);
        sock = served.sock();
        reasons = served.reasons();
    }

    private void refused(VhostUserRequest r, String path, String named) throws Exception {
        int fd = FileIo.open(path, FileIo.O_RDONLY | FileIo.O_CLOEXEC, 0);
        assertThat(fd).as("open %s", path).isGreaterThanOrEqualTo(0);
        try (RawClient c = new RawClient(sock)) {
            c.send(r, true, VhostUserCodec.u64(0), fd);
            c.awaitClosedByServer(5000);
        } finally {
            FileIo.close(fd);
        }
        assertThat(reasons.poll(10, TimeUnit.SECONDS)).startsWith("malformed message: ")
                .contains(r.name()).contains(named).contains("not an eventfd");
    }

    @Test
    void nonEventfdKickCallAndErrFdsCloseTheConnectionWithANamedReason() throws Exception {
        refused(VhostUserRequest.SET_VRING_KICK, "/dev/null", "/dev/null");
        refused(VhostUserRequest.SET_VRING_CALL, dir.toString(), dir.toString());
        refused(VhostUserRequest.SET_VRING_ERR, "/dev/null", "/dev/null");
        // An eventfd is taken (acked under REPLY_ACK semantics: the connection stays open and answers).
        int efd = EventFds.eventfd(0, EventFds.EFD_CLOEXEC);
        try (RawClient c = new RawClient(sock)) {
            c.send(VhostUserRequest.SET_VRING_CALL, false, VhostUserCodec.u64(0), efd);
            c.send(VhostUserRequest.GET_FEATURES, false, new byte[0]);
            VhostUserMessage reply = c.reply(5000);
            assertThat(reply.kind()).isEqualTo(VhostUserRequest.GET_FEATURES);
        } finally {
            FileIo.close(efd);
        }
        assertThat(reasons.poll(10, TimeUnit.SECONDS)).isEqualTo("front-end disconnected");
    }
}
