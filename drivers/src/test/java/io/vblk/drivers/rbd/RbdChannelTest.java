package io.vblk.drivers.rbd;

import io.vblk.aio.AioContext;
import io.vblk.aio.DeferCall;
import io.vblk.aio.linuxaio.LoopSteps;
import io.vblk.aio.sys.Errno;
import io.vblk.drivers.BlockIo;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.logging.Handler;
import java.util.logging.LogRecord;
import java.util.logging.Logger;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * Home thread: the test thread, the home of the context each test steps. What the rbd driver adds
 * beyond the conformance suite, on a real single-node cluster ({@link CephCluster}, one per class):
 * completions reach the home thread and never run on librbd's thread, cluster errors reach the
 * request (and the log once), resize reaches the image, snapshots open read-only.
 */
@Tag("real")
@Timeout(300)
class RbdChannelTest extends CephClusterFixture {
    private static final int BLOCK = 4096;
    private static int images;

    private AioContext ctx;
    private Arena arena;

    @BeforeEach
    void open() {
        ctx = AioContext.forCurrentThread("rbd-test");
        arena = Arena.ofShared();
    }

    @AfterEach
    void close() {
        arena.close();
        ctx.close();
    }

    private static String newImage(String size) throws Exception {
        String name = "img" + images++;
        cluster.rbd("create", "--size", size, CephCluster.POOL + "/" + name);
        return name;
    }

    private static RbdDriver.Options options(String image, String snapshot, boolean ro) {
        return new RbdDriver.Options(CephCluster.POOL, image, null, snapshot, cluster.conf().toString(), null, null, ro);
    }

    /** Runs {@code ios} in one defer-call section and steps the loop until all completed; returns the results. */
    private long[] runAll(RbdChannel ch, List<BlockIo> ios, List<Thread> completionThreads) {
        long[] results = new long[ios.size()];
        AtomicInteger done = new AtomicInteger();
        DeferCall dc = ctx.deferCall();
        dc.begin();
        for (int i = 0; i < ios.size(); i++) {
            BlockIo io = ios.get(i);
            io.tag = i;
            io.completion = (b, res) -> {
                results[b.tag] = res;
                completionThreads.add(Thread.currentThread());
                done.incrementAndGet();
            };
            ch.submit(io);
        }
        dc.end();
        LoopSteps.pollUntil(ctx, () -> done.get() == ios.size(), Duration.ofSeconds(60), "rbd requests complete");
        return results;
    }

    private BlockIo rw(int op, long offset, MemorySegment buf) {
        BlockIo io = new BlockIo(arena, 4).rw(op, offset, null);
        io.iov.add(buf.address(), buf.byteSize());
        return io;
    }

    private MemorySegment pattern(int salt) {
        MemorySegment m = arena.allocate(BLOCK, BLOCK);
        for (int i = 0; i < BLOCK; i += 8) {
            m.set(ValueLayout.JAVA_LONG, i, ((long) salt << 32) | i);
        }
        return m;
    }

    @Test
    void completionsRunOnTheHomeThreadNeverOnALibrbdThread() throws Exception {
        try (RbdDriver d = RbdDriver.open(options(newImage("16M"), null, false))) {
            RbdChannel ch = (RbdChannel) d.openChannel(ctx);
            List<BlockIo> writes = new ArrayList<>();
            List<MemorySegment> written = new ArrayList<>();
            for (int i = 0; i < 64; i++) {
                MemorySegment m = pattern(i);
                written.add(m);
                writes.add(rw(BlockIo.WRITE, (long) i * 3 * BLOCK, m));
            }
            List<Thread> threads = new ArrayList<>();
            assertThat(runAll(ch, writes, threads)).containsOnly(BLOCK);
            List<BlockIo> reads = new ArrayList<>();
            List<MemorySegment> read = new ArrayList<>();
            for (int i = 0; i < 64; i++) {
                MemorySegment m = arena.allocate(BLOCK, BLOCK);
                read.add(m);
                reads.add(rw(BlockIo.READ, (long) i * 3 * BLOCK, m));
            }
            assertThat(runAll(ch, reads, threads)).containsOnly(BLOCK);
            for (int i = 0; i < 64; i++) {
                assertThat(read.get(i).mismatch(written.get(i))).as("block %d", i).isEqualTo(-1);
            }
            assertThat(threads).hasSize(128).containsOnly(Thread.currentThread());
            assertThat(ch.callbacks()).isEqualTo(128);
            assertThat(ch.lastCallbackThread()).isNotNull().isNotSameAs(Thread.currentThread());
            ch.close();
        }
    }

    @Test
    void clusterErrorsFailTheRequestAndAreLoggedOnce() throws Exception {
        assertThatThrownBy(() -> RbdDriver.open(options("no-such-image", null, false)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("ENOENT").hasMessageContaining("no-such-image");
        List<LogRecord> logged = new ArrayList<>();
        Logger jul = Logger.getLogger(RbdDriver.class.getName());
        Handler h = new Handler() {
            @Override
            public synchronized void publish(LogRecord r) {
                logged.add(r);
            }

            @Override
            public void flush() {
            }

            @Override
            public void close() {
            }
        };
        jul.addHandler(h);
        String addr = null;
        try (RbdDriver d = RbdDriver.open(options(newImage("16M"), null, false))) {
            RbdChannel ch = (RbdChannel) d.openChannel(ctx);
            assertThat(runAll(ch, List.of(rw(BlockIo.WRITE, 0, pattern(1))), new ArrayList<>())).containsOnly(BLOCK);
            addr = d.clientAddress();
            assertThat(addr).isNotBlank();
            // Fence this client as a failover would: its next requests fail with EBLOCKLISTED.
            cluster.ceph("osd", "blocklist", "add", addr.replaceAll("^\\[?(v1:)?", "").replaceAll("[\\],].*$", ""));
            List<BlockIo> ios = new ArrayList<>();
            for (int i = 0; i < 8; i++) {
                ios.add(rw(BlockIo.WRITE, (long) i * BLOCK, pattern(2)));
            }
            long[] res = runAll(ch, ios, new ArrayList<>());
            assertThat(res).containsOnly(-RbdDriver.EBLOCKLISTED);
            long warnings = logged.stream().filter(r -> r.getMessage().contains("EBLOCKLISTED")).count();
            assertThat(warnings).as("log lines for 8 failed requests: %s", logged).isEqualTo(1);
            ch.close();
        } finally {
            jul.removeHandler(h);
            if (addr != null) {
                cluster.ceph("osd", "blocklist", "clear");
            }
        }
    }

    @Test
    void resizeReachesTheImage() throws Exception {
        String image = newImage("8M");
        try (RbdDriver d = RbdDriver.open(options(image, null, false))) {
            assertThat(d.length()).isEqualTo(8L << 20);
            assertThat(d.resize(24L << 20)).isEqualTo(24L << 20);
            assertThat(d.length()).isEqualTo(24L << 20);
            assertThat(cluster.rbd("info", "--format", "json", CephCluster.POOL + "/" + image)).contains("\"size\":" + (24L << 20));
            RbdChannel ch = (RbdChannel) d.openChannel(ctx);
            MemorySegment m = pattern(5);
            assertThat(runAll(ch, List.of(rw(BlockIo.WRITE, (20L << 20), m)), new ArrayList<>())).containsOnly(BLOCK);
            ch.close();
        }
    }

    @Test
    void aSnapshotOpensReadOnlyAndServesItsData() throws Exception {
        String image = newImage("8M");
        MemorySegment before = pattern(7);
        try (RbdDriver d = RbdDriver.open(options(image, null, false))) {
            RbdChannel ch = (RbdChannel) d.openChannel(ctx);
            assertThat(runAll(ch, List.of(rw(BlockIo.WRITE, 0, before)), new ArrayList<>())).containsOnly(BLOCK);
            ch.close();
        }
        cluster.rbd("snap", "create", CephCluster.POOL + "/" + image + "@s1");
        try (RbdDriver d = RbdDriver.open(options(image, null, false))) {
            RbdChannel ch = (RbdChannel) d.openChannel(ctx);
            assertThat(runAll(ch, List.of(rw(BlockIo.WRITE, 0, pattern(8))), new ArrayList<>())).containsOnly(BLOCK);
            ch.close();
        }
        try (RbdDriver snap = RbdDriver.open(options(image, "s1", false))) {
            assertThat(snap.readOnly()).isTrue();
            RbdChannel ch = (RbdChannel) snap.openChannel(ctx);
            MemorySegment got = arena.allocate(BLOCK, BLOCK);
            assertThat(runAll(ch, List.of(rw(BlockIo.READ, 0, got)), new ArrayList<>())).containsOnly(BLOCK);
            assertThat(got.mismatch(before)).isEqualTo(-1);
            assertThat(runAll(ch, List.of(rw(BlockIo.WRITE, 0, got)), new ArrayList<>())).containsOnly(-Errno.EROFS);
            ch.close();
        }
    }
}
