package io.vblk.drivers.qcow2;

import io.vblk.aio.AioContext;
import io.vblk.aio.engine.AioMode;
import io.vblk.aio.linuxaio.LoopSteps;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.file.FileDriver;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The qcow2 driver against images made and judged by the real qemu-img and qemu-io: images QEMU
 * wrote (with and without a backing file) read back what QEMU wrote; seeded random workloads at
 * queue depth 8 leave images that {@code qemu-img check} finds clean and {@code qemu-img compare}
 * finds equal to a raw mirror of what was written.
 *
 * <p>Home thread: the test thread, home of the context each test steps.
 */
@Tag("real")
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class Qcow2ImageTest {
    private static final long MIB = 1 << 20;

    @TempDir
    Path dir;
    private AioContext ctx;
    private Arena arena;

    @BeforeEach
    void setUp() {
        ctx = AioContext.forCurrentThread("qcow2-test");
        arena = Arena.ofShared();
    }

    @AfterEach
    void tearDown() {
        arena.close();
        ctx.close();
    }

    /** An open image: the file and the qcow2 driver over it, and one channel. */
    private final class Image implements AutoCloseable {
        final FileDriver file;
        final Qcow2Driver q;
        final BlockChannel ch;

        Image(Path path, boolean readOnly) {
            file = FileDriver.open(path.toString(), AioMode.THREADS, FileDriver.Cache.WRITEBACK, readOnly);
            q = Qcow2Driver.open(file, null, true, ctx);
            ch = q.openChannel(ctx);
        }

        long io(BlockIo io) {
            long[] r = {Long.MIN_VALUE};
            io.completion = (x, res) -> r[0] = res;
            ch.submit(io);
            LoopSteps.pollUntil(ctx, () -> r[0] != Long.MIN_VALUE, BlockIo.opName(io.op) + " completes");
            return r[0];
        }

        byte[] read(long off, int len) {
            MemorySegment m = arena.allocate(len, 4096);
            m.fill((byte) 0x5a);
            BlockIo io = new BlockIo(arena, 4).rw(BlockIo.READ, off, null);
            io.iov.add(m.address(), len);
            assertThat(io(io)).as("read at %d", off).isEqualTo(len);
            return m.toArray(ValueLayout.JAVA_BYTE);
        }

        @Override
        public void close() {
            LoopSteps.pollUntil(ctx, () -> ch.inFlight() == 0, "idle");
            ch.close();
            q.close();
            file.close();
        }
    }

    private static byte[] filled(int len, int value) {
        byte[] b = new byte[len];
        Arrays.fill(b, (byte) value);
        return b;
    }

    @Test
    void readsWhatQemuIoWrote() {
        Path img = QemuImg.create(dir.resolve("a.qcow2"), 64 * MIB, null);
        QemuImg.ioOk("-f", "qcow2", "-c", "write -P 0xab 0 1M", "-c", "write -P 0xcd 10M 64k",
                "-c", "write -P 0x11 20M 512", "-c", "write -z 0 4k", img.toString());
        try (Image i = new Image(img, true)) {
            assertThat(i.q.header().version()).isEqualTo(3);
            assertThat(i.q.length()).isEqualTo(64 * MIB);
            assertThat(i.read(0, 4096)).isEqualTo(filled(4096, 0));
            assertThat(i.read(4096, 1 << 20 - 4096 > 0 ? (int) MIB - 4096 : 0)).isEqualTo(filled((int) MIB - 4096, 0xab));
            assertThat(i.read(10 * MIB, 65536)).isEqualTo(filled(65536, 0xcd));
            byte[] around = i.read(20 * MIB - 512, 2048);
            assertThat(Arrays.copyOfRange(around, 0, 512)).isEqualTo(filled(512, 0));
            assertThat(Arrays.copyOfRange(around, 512, 1024)).isEqualTo(filled(512, 0x11));
            assertThat(Arrays.copyOfRange(around, 1024, 2048)).isEqualTo(filled(1024, 0));
            assertThat(i.read(40 * MIB, 65536)).isEqualTo(filled(65536, 0));
        }
    }

    @Test
    void readsThroughABackingChain() {
        Path base = QemuImg.create(dir.resolve("base.qcow2"), 32 * MIB, null);
        QemuImg.ioOk("-f", "qcow2", "-c", "write -P 0x22 0 4M", base.toString());
        Path mid = dir.resolve("mid.qcow2");
        QemuImg.imgOk("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", mid.toString(), "32M");
        QemuImg.ioOk("-f", "qcow2", "-c", "write -P 0x33 1M 512", mid.toString());
        Path raw = dir.resolve("raw.img");
        QemuImg.imgOk("create", "-q", "-f", "raw", raw.toString(), "8M");
        QemuImg.ioOk("-f", "raw", "-c", "write -P 0x44 0 64k", raw.toString());
        Path top = dir.resolve("top.qcow2");
        // A top image larger than its backing file: past the backing's end reads are zeroes.
        QemuImg.imgOk("create", "-q", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", top.toString(), "64M");
        QemuImg.ioOk("-f", "qcow2", "-c", "write -P 0x55 2M 4k", top.toString());
        try (Image i = new Image(top, true)) {
            assertThat(i.q.backing()).isInstanceOf(Qcow2Driver.class);
            assertThat(i.read(0, 4096)).isEqualTo(filled(4096, 0x22));
            byte[] c = i.read(1 * MIB - 512, 1536);
            assertThat(Arrays.copyOfRange(c, 0, 512)).isEqualTo(filled(512, 0x22));
            assertThat(Arrays.copyOfRange(c, 512, 1024)).isEqualTo(filled(512, 0x33));
            assertThat(Arrays.copyOfRange(c, 1024, 1536)).isEqualTo(filled(512, 0x22));
            assertThat(i.read(2 * MIB, 4096)).isEqualTo(filled(4096, 0x55));
            assertThat(i.read(2 * MIB + 4096, 4096)).isEqualTo(filled(4096, 0x22));
            assertThat(i.read(5 * MIB, 4096)).isEqualTo(filled(4096, 0));
            assertThat(i.read(40 * MIB, 4096)).isEqualTo(filled(4096, 0));
        }
        Path overRaw = dir.resolve("over-raw.qcow2");
        QemuImg.imgOk("create", "-q", "-f", "qcow2", "-b", "raw.img", "-F", "raw", overRaw.toString(), "16M");
        try (Image i = new Image(overRaw, true)) {
            assertThat(i.q.backing()).isInstanceOf(FileDriver.class);
            assertThat(i.read(0, 65536)).isEqualTo(filled(65536, 0x44));
            assertThat(i.read(12 * MIB, 4096)).isEqualTo(filled(4096, 0));
        }
    }

    @Test
    void randomWorkloadPassesCheckAndCompare() throws IOException {
        workload(false, 20261205L, 48 * MIB, 65536, null);
    }

    @Test
    void randomWorkloadOverABackingFilePassesCheckAndCompare() throws IOException {
        workload(true, 4242L, 48 * MIB, 65536, null);
    }

    /** 4 KiB clusters and 8-bit refcounts: a refcount block covers 16 MiB, so the workload allocates new ones. */
    @Test
    void smallClustersAllocateRefcountBlocks() throws IOException {
        workload(false, 77L, 48 * MIB, 4096, "cluster_size=4096,refcount_bits=8");
    }

    /**
     * 512-byte clusters: the refcount table qemu-img made (one cluster: 64 blocks of 256 clusters, 8 MiB)
     * fills up, so the driver grows it (new table and block, header switch, old table freed), more than once.
     */
    @Test
    void aFullRefcountTableGrows() throws IOException {
        workload(false, 31L, 16 * MIB, 512, "cluster_size=512");
        try (RandomAccessFile f = new RandomAccessFile(dir.resolve("w.qcow2").toFile(), "r")) {
            f.seek(56);
            assertThat(f.readInt()).as("refcount_table_clusters").isGreaterThanOrEqualTo(4);
        }
    }

    /** 40 GiB virtual, writes spread over it: 80 L2 tables in use, more than the cache holds (64). */
    @Test
    void writesSpreadOverMoreL2TablesThanTheCacheHolds() throws IOException {
        workload(false, 99L, 40L << 30, 65536, "refcount_bits=64");
    }

    /**
     * Seeded random writes, write-zeroes and discards at queue depth 8 (requests of one round never
     * overlap), mirrored into a raw file with the bytes each should leave; then qemu-img check and
     * compare judge the image.
     */
    private void workload(boolean withBacking, long seed, long size, int cs, String options) throws IOException {
        Path img = dir.resolve("w.qcow2");
        Path mirror = dir.resolve("mirror.raw");
        try (RandomAccessFile m = new RandomAccessFile(mirror.toFile(), "rw")) {
            m.setLength(size);
        }
        if (withBacking) {
            Path base = dir.resolve("wbase.raw");
            QemuImg.imgOk("create", "-q", "-f", "raw", base.toString(), "40M");
            QemuImg.ioOk("-f", "raw", "-c", "write -P 0x77 0 40M", base.toString());
            QemuImg.imgOk("create", "-q", "-f", "qcow2", "-b", "wbase.raw", "-F", "raw", img.toString(), "48M");
            QemuImg.ioOk("-f", "raw", "-c", "write -P 0x77 0 40M", mirror.toString());
        } else {
            QemuImg.create(img, size, options);
        }
        System.out.println("qcow2 workload seed " + seed + (withBacking ? " (backing)" : "") + " size " + size
                + " cluster " + cs);
        SplittableRandom rnd = new SplittableRandom(seed);
        int depth = 8;
        MemorySegment[] bufs = new MemorySegment[depth];
        BlockIo[] ios = new BlockIo[depth];
        for (int k = 0; k < depth; k++) {
            bufs[k] = arena.allocate(2 * MIB, 4096);
            ios[k] = new BlockIo(arena, 8);
        }
        try (Image i = new Image(img, false); RandomAccessFile m = new RandomAccessFile(mirror.toFile(), "rw")) {
            for (int round = 0; round < 60; round++) {
                long[] results = new long[depth];
                int[] left = {depth};
                long[][] ranges = new long[depth][];
                for (int k = 0; k < depth; k++) {
                    long off;
                    long len;
                    do {
                        len = rnd.nextInt(4) == 0 ? (1 + rnd.nextInt(4)) * 65536L : 512L * (1 + rnd.nextInt(300));
                        off = 512L * rnd.nextLong(size / 512 - len / 512);
                    } while (overlaps(ranges, k, off, len, cs));
                    ranges[k] = new long[] {off, len};
                    int kind = rnd.nextInt(10);
                    BlockIo io = ios[k];
                    final int slot = k;
                    if (kind < 7) {
                        byte v = (byte) (1 + rnd.nextInt(250));
                        MemorySegment b = bufs[k].asSlice(0, len);
                        b.fill(v);
                        io.rw(BlockIo.WRITE, off, null);
                        // Two segments when the length allows: the split lands mid-cluster.
                        long cut = len > 1024 ? 512 * (1 + rnd.nextLong(len / 512 - 1)) : len;
                        io.iov.add(b.address(), cut);
                        if (cut < len) {
                            io.iov.add(b.address() + cut, len - cut);
                        }
                        byte[] data = new byte[(int) len];
                        Arrays.fill(data, v);
                        m.seek(off);
                        m.write(data);
                    } else if (kind < 9) {
                        io.range(BlockIo.WRITE_ZEROES, off, len, 0, null);
                        m.seek(off);
                        m.write(new byte[(int) len]);
                    } else {
                        io.range(BlockIo.DISCARD, off, len, 0, null);
                        // qcow2 discards whole clusters only; they then read as zeroes.
                        long first = (off + cs - 1) / cs * cs;
                        long last = (off + len) / cs * cs;
                        for (long c = first; c < last; c += cs) {
                            m.seek(c);
                            m.write(new byte[cs]);
                        }
                    }
                    io.completion = (x, r) -> {
                        results[slot] = r;
                        left[0]--;
                    };
                }
                for (int k = 0; k < depth; k++) {
                    i.ch.submit(ios[k]);
                }
                LoopSteps.pollUntil(ctx, () -> left[0] == 0, "round of " + depth + " requests");
                for (int k = 0; k < depth; k++) {
                    assertThat(results[k]).as("request %s", ios[k]).isGreaterThanOrEqualTo(0);
                }
            }
            BlockIo flush = new BlockIo(arena, 1).range(BlockIo.FLUSH, 0, 0, 0, null);
            assertThat(i.io(flush)).isZero();
        }
        String check = QemuImg.imgOk("check", img.toString());
        assertThat(check).contains("No errors were found");
        assertThat(check).doesNotContain("leaked");
        QemuImg.imgOk("compare", "-f", "qcow2", "-F", "raw", img.toString(), mirror.toString());
        // Read back through vblk too: the driver agrees with its own writes after a reopen.
        if (size > 64 * MIB) {
            return;
        }
        byte[] want = Files.readAllBytes(mirror);
        try (Image i = new Image(img, true)) {
            for (long off = 0; off < size; off += 4 * MIB) {
                byte[] got = i.read(off, (int) (4 * MIB));
                assertThat(Arrays.equals(got, 0, got.length, want, (int) off, (int) off + got.length))
                        .as("4 MiB at %d", off).isTrue();
            }
        }
    }

    private static boolean overlaps(long[][] ranges, int k, long off, long len, int cs) {
        for (int j = 0; j < k; j++) {
            // Whole clusters: a discard or an allocation in one request must not race another's bytes.
            long a = ranges[j][0] / cs;
            long b = (ranges[j][0] + ranges[j][1] - 1) / cs;
            if (off / cs <= b && (off + len - 1) / cs >= a) {
                return true;
            }
        }
        return false;
    }

    /**
     * Queue depth 32 kept full the way a device keeps it: each completion submits the next request
     * from inside its callback (the pooled request objects are reused at once), reads and writes
     * mixed; every request completes exactly once.
     */
    @Test
    void resubmittingFromCompletionsLosesNoRequest() {
        Path img = QemuImg.create(dir.resolve("r.qcow2"), 1024 * MIB, null);
        QemuImg.ioOk("-f", "qcow2", "-c", "write -P 0x21 0 32M", img.toString());
        int depth = 32;
        long total = 200_000;
        SplittableRandom rnd = new SplittableRandom(5);
        long[] started = {0};
        long[] done = {0};
        long[] failed = {0};
        try (Image i = new Image(img, false)) {
            BlockIo[] ios = new BlockIo[depth];
            io.vblk.drivers.IoCompletion[] next = new io.vblk.drivers.IoCompletion[1];
            next[0] = (io, r) -> {
                done[0]++;
                if (r < 0) {
                    failed[0]++;
                }
                if (started[0] < total) {
                    started[0]++;
                    long off = 4096L * rnd.nextLong(1024 * MIB / 4096);
                    MemorySegment buf = (MemorySegment) io.owner;
                    io.rw(rnd.nextInt(4) != 0 ? BlockIo.WRITE : BlockIo.READ, off, next[0]);
                    io.iov.add(buf.address(), 4096);
                    i.ch.submit(io);
                }
            };
            for (int k = 0; k < depth; k++) {
                ios[k] = new BlockIo(arena, 1);
                ios[k].owner = arena.allocate(4096, 4096);
                started[0]++;
                ios[k].rw(BlockIo.READ, 4096L * k, next[0]);
                ios[k].iov.add(((MemorySegment) ios[k].owner).address(), 4096);
                i.ch.submit(ios[k]);
            }
            LoopSteps.pollUntil(ctx, () -> done[0] == total, java.time.Duration.ofSeconds(90), "all requests complete");
            assertThat(failed[0]).isZero();
        }
        assertThat(QemuImg.imgOk("check", img.toString())).contains("No errors were found");
    }

    @Test
    void writesBecomeVisibleToQemu() {
        Path img = QemuImg.create(dir.resolve("v.qcow2"), 16 * MIB, null);
        try (Image i = new Image(img, false)) {
            MemorySegment b = arena.allocate(8192, 4096);
            b.fill((byte) 0x6c);
            BlockIo w = new BlockIo(arena, 1).rw(BlockIo.WRITE, 3 * MIB + 512, null);
            w.iov.add(b.address(), 8192);
            assertThat(i.io(w)).isEqualTo(8192);
        }
        QemuImg.ioOk("-f", "qcow2", "-c", "read -P 0x6c 3146240 8192", "-c", "read -P 0 3M 512", img.toString());
        assertThat(QemuImg.imgOk("check", img.toString())).contains("No errors were found");
    }
}
