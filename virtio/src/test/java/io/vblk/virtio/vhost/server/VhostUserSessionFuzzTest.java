package io.vblk.virtio.vhost.server;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;
import io.vblk.aio.AioContext;
import io.vblk.aio.sys.EventFds;
import io.vblk.aio.sys.FileIo;
import io.vblk.aio.sys.Mmap;
import io.vblk.virtio.vhost.RecordingDevice;
import io.vblk.virtio.vhost.wire.VhostUserCodec;
import io.vblk.virtio.vhost.wire.VhostUserCodec.MemRegion;
import io.vblk.virtio.vhost.wire.VhostUserFramer;
import io.vblk.virtio.vhost.wire.VhostUserMessage;
import io.vblk.virtio.vhost.wire.VhostUserMessageLayout;
import io.vblk.virtio.vhost.wire.VhostUserProtocolException;
import io.vblk.virtio.vhost.wire.VhostUserRequest;

import java.io.File;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Fuzz targets: a vhost-user session fed what a hostile front-end sends, through the frame reader
 * ({@link VhostUserFramer}) into the session's dispatch ({@link VhostUserSession#handle}), with
 * real fds: memfds of any size (0 included), eventfds, {@code /dev/null} and a directory.
 * {@link #messages} sends any request with a payload shaped for its kind (or raw);
 * {@link #memoryTable} sends SET_MEM_TABLE / ADD_MEM_REG / REM_MEM_REG with regions that overlap,
 * wrap around 2^64, start at offsets beyond their fd or reach past its end, or have sizes of
 * 2^63 and more. Properties: nothing but a {@link VhostUserProtocolException} escapes; a session
 * torn down after any sequence leaves no fd open (the process's fd count is back where it was).
 */
class VhostUserSessionFuzzTest {
    private static final long VERSION_1 = 1L << 32;
    private static final long PROTOCOL_FEATURES = 1L << 30;
    private static final long[] SIZES = {0, 1, 4096, 64 << 10, 1 << 20, 1L << 63, -1L, -4096L, Long.MAX_VALUE};
    private static final long[] ADDRS = {0, 4096, 64 << 10, 1 << 20, -4096L, -1L, Long.MAX_VALUE, 1L << 63, 0x7f00_0000_0000L};
    private static final long[] FD_SIZES = {0, 4096, 64 << 10, 128 << 10, 1 << 20};

    /** Per fuzzing thread: a context homed on it and a recording device on that context. */
    private static final ThreadLocal<Rig> RIG = ThreadLocal.withInitial(Rig::new);

    private static final class Rig {
        final AioContext ctx = AioContext.forCurrentThread("fuzz");
        final RecordingDevice device = new RecordingDevice(ctx, 2, 2048);
        final MemorySegment buf = Arena.ofAuto().allocate(VhostUserFramer.BUFFER_BYTES, 8);

        Rig() {
            // The first JNA direct-mapped call registers the facade's natives, for which libffi allocates its
            // closure pool once per process: a deleted temporary file whose descriptor stays open for good. Made
            // here, so that a session that happens to be the first to reach the facade is not charged with it.
            FileIo.close(EventFds.eventfd(0, EventFds.EFD_CLOEXEC));
        }
    }

    private static final class Channel implements VhostUserSession.Channel {
        boolean resumed;
        String failed;

        @Override
        public void send(VhostUserMessage reply) {
            assertThat(reply.isReply()).isTrue();
            for (int fd : reply.fds()) {
                FileIo.close(fd);
            }
        }

        @Override
        public void resume() {
            resumed = true;
        }

        @Override
        public void fail(String reason) {
            failed = reason;
        }

        @Override
        public void backendChannel(int fd) {
            FileIo.close(fd);
        }

        @Override
        public boolean sendConfigChange(boolean needReply) {
            return false;
        }
    }

    @FuzzTest(maxDuration = "3h", maxExecutions = 10_000_000)
    void messages(FuzzedDataProvider d) {
        run(d, () -> message(d));
    }

    @FuzzTest(maxDuration = "3h", maxExecutions = 10_000_000)
    void memoryTable(FuzzedDataProvider d) {
        run(d, () -> memoryMessage(d));
    }

    private interface Source {
        VhostUserMessage next();
    }

    /**
     * The session's control context is homed on this thread, not on the test runner's (a home
     * binding lasts for the thread's life and would refuse the blocking waits of later tests).
     */
    private static final ExecutorService HOME = Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "fuzz-session");
        t.setDaemon(true);
        return t;
    });

    private static void run(FuzzedDataProvider d, Source source) {
        Future<?> f = HOME.submit(() -> runOnHome(d, source));
        try {
            f.get();
        } catch (ExecutionException e) {
            if (e.getCause() instanceof RuntimeException re) {
                throw re;
            }
            if (e.getCause() instanceof Error err) {
                throw err;
            }
            throw new AssertionError(e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    private static void runOnHome(FuzzedDataProvider d, Source source) {
        Rig rig = RIG.get();
        int before = openFds();
        Channel ch = new Channel();
        VhostUserSession s = new VhostUserSession("fuzz", rig.ctx, rig.device, ch);
        VhostUserFramer framer = new VhostUserFramer(VhostUserFramer.Direction.REQUESTS, rig.buf, FileIo::close);
        int count = d.consumeInt(1, 8);
        try {
            for (int i = 0; i < count && ch.failed == null; i++) {
                VhostUserMessage m = framed(framer, source.next());
                if (m == null) {
                    break;
                }
                ch.resumed = false;
                if (!s.handle(m)) {
                    for (int spins = 0; spins < 1000 && !ch.resumed && ch.failed == null; spins++) {
                        rig.ctx.poll(false);
                    }
                    assertThat(ch.resumed || ch.failed != null).as("pending message finished").isTrue();
                }
            }
        } catch (VhostUserProtocolException e) {
            assertThat(e.getMessage()).isNotBlank();
        }
        boolean[] down = {false};
        s.disconnect(() -> down[0] = true);
        for (int spins = 0; spins < 1000 && !down[0]; spins++) {
            rig.ctx.poll(false);
        }
        assertThat(down[0]).as("session torn down").isTrue();
        assertThat(openFds()).as("fds after the session").isEqualTo(before);
    }

    /** The message as the framer hands it on (the checks the connection applies), or null when refused. */
    private static VhostUserMessage framed(VhostUserFramer framer, VhostUserMessage m) {
        byte[] bytes = VhostUserCodec.encode(m);
        int h = VhostUserMessageLayout.HEADER_BYTES;
        MemorySegment.copy(MemorySegment.ofArray(bytes), 0, MemorySegment.ofAddress(framer.writeAddress()).reinterpret(h), 0, h);
        try {
            VhostUserMessage out = framer.received(h, m.fds(), m.fds().length, false);
            if (out == null) {
                int n = bytes.length - h;
                MemorySegment.copy(MemorySegment.ofArray(bytes), h, MemorySegment.ofAddress(framer.writeAddress()).reinterpret(n), 0, n);
                out = framer.received(n, new int[1], 0, false);
            }
            return out;
        } catch (VhostUserProtocolException e) {
            return null;
        }
    }

    private static VhostUserMessage message(FuzzedDataProvider d) {
        VhostUserRequest r = d.pickValue(VhostUserRequest.values());
        boolean ack = d.consumeBoolean();
        byte[] payload;
        int fdCount = 0;
        switch (r) {
            case SET_FEATURES -> payload = VhostUserCodec.u64(d.consumeInt(0, 3) == 0 ? d.consumeLong()
                    : VERSION_1 | (d.consumeBoolean() ? PROTOCOL_FEATURES : 0) | (d.consumeLong() & 0x3000_1000L));
            case SET_PROTOCOL_FEATURES, SET_STATUS -> payload = VhostUserCodec.u64(d.consumeLong(0, 0x1_ffff));
            case SET_VRING_NUM, SET_VRING_BASE, GET_VRING_BASE, SET_VRING_ENABLE ->
                    payload = VhostUserCodec.vringState(d.consumeInt(0, 3) == 0 ? d.consumeInt() : d.consumeInt(0, 2),
                            d.consumeInt(0, 3) == 0 ? d.consumeInt() : 1 << d.consumeInt(0, 11));
            case SET_VRING_ADDR -> payload = VhostUserCodec.vringAddr(new VhostUserCodec.VringAddr(d.consumeInt(0, 2),
                    d.consumeInt(0, 1), d.pickValue(ADDRS) + d.consumeInt(0, 64), d.pickValue(ADDRS) + d.consumeInt(0, 64),
                    d.pickValue(ADDRS) + d.consumeInt(0, 64), d.consumeLong()));
            case SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ERR -> {
                long v = d.consumeInt(0, 3) == 0 ? d.consumeLong() : d.consumeInt(0, 2) | (d.consumeBoolean() ? 0x100 : 0);
                payload = VhostUserCodec.u64(v);
                fdCount = (v & 0x100) == 0 ? 1 : 0;
            }
            case SET_MEM_TABLE, ADD_MEM_REG, REM_MEM_REG -> {
                return memoryMessage(d);
            }
            // The codec builds at most MAX_CONFIG_BYTES of data; longer config payloads come raw (below).
            case GET_CONFIG, SET_CONFIG -> payload = VhostUserCodec.config(d.consumeInt(0, 300), d.consumeInt(0, 2),
                    d.consumeBytes(d.consumeInt(0, VhostUserMessageLayout.MAX_CONFIG_BYTES)));
            case GET_INFLIGHT_FD, SET_INFLIGHT_FD -> {
                payload = VhostUserCodec.inflight(new VhostUserCodec.Inflight(d.pickValue(SIZES), d.pickValue(SIZES),
                        d.consumeInt(0, 4), 1 << d.consumeInt(0, 11)));
                fdCount = r == VhostUserRequest.SET_INFLIGHT_FD ? 1 : 0;
            }
            default -> payload = d.consumeBytes(d.consumeInt(0, 40));
        }
        if (d.consumeInt(0, 15) == 0) {
            payload = d.consumeBytes(d.consumeInt(0, VhostUserMessageLayout.MAX_PAYLOAD_BYTES));
        }
        if (d.consumeInt(0, 15) == 0) {
            fdCount = d.consumeInt(0, 3);
        }
        return VhostUserMessage.request(r, ack, payload, fds(d, fdCount));
    }

    private static VhostUserMessage memoryMessage(FuzzedDataProvider d) {
        int kind = d.consumeInt(0, 2);
        if (kind == 0) {
            int n = d.consumeInt(1, 8);
            List<MemRegion> regions = new ArrayList<>(n);
            for (int i = 0; i < n; i++) {
                regions.add(region(d));
            }
            return VhostUserMessage.request(VhostUserRequest.SET_MEM_TABLE, d.consumeBoolean(),
                    VhostUserCodec.memTable(regions), fds(d, d.consumeInt(0, 7) == 0 ? d.consumeInt(0, 8) : n));
        }
        VhostUserRequest r = kind == 1 ? VhostUserRequest.ADD_MEM_REG : VhostUserRequest.REM_MEM_REG;
        return VhostUserMessage.request(r, d.consumeBoolean(), VhostUserCodec.memReg(region(d)),
                fds(d, d.consumeInt(0, 7) == 0 ? d.consumeInt(0, 2) : kind == 1 ? 1 : 0));
    }

    private static MemRegion region(FuzzedDataProvider d) {
        long gpa = d.consumeBoolean() ? d.pickValue(ADDRS) : 4096L * d.consumeInt(0, 64);
        long size = d.consumeBoolean() ? d.pickValue(SIZES) : 4096L * d.consumeInt(0, 32);
        long uaddr = d.consumeBoolean() ? d.pickValue(ADDRS) : 0x7f00_0000_0000L + 4096L * d.consumeInt(0, 64);
        long off = d.consumeBoolean() ? d.pickValue(ADDRS) : 4096L * d.consumeInt(0, 4);
        return new MemRegion(gpa, size, uaddr, off);
    }

    /** {@code n} fresh fds of kinds the fuzzer picks; the message owns them. */
    private static int[] fds(FuzzedDataProvider d, int n) {
        int[] fds = new int[n];
        for (int i = 0; i < n; i++) {
            fds[i] = switch (d.consumeInt(0, 5)) {
                case 0 -> EventFds.eventfd(0, EventFds.EFD_CLOEXEC | EventFds.EFD_NONBLOCK);
                case 1 -> FileIo.open("/dev/null", FileIo.O_RDWR | FileIo.O_CLOEXEC, 0);
                case 2 -> FileIo.open(System.getProperty("java.io.tmpdir"), FileIo.O_RDONLY | FileIo.O_CLOEXEC, 0);
                default -> {
                    int fd = Mmap.memfdCreate("fuzz", Mmap.MFD_CLOEXEC);
                    FileIo.ftruncate(fd, d.pickValue(FD_SIZES));
                    yield fd;
                }
            };
        }
        return fds;
    }

    private static int openFds() {
        String[] l = new File("/proc/self/fd").list();
        return l == null ? -1 : l.length;
    }
}
