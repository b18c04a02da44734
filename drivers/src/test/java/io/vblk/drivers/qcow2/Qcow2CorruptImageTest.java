package io.vblk.drivers.qcow2;

import io.vblk.aio.AioContext;
import io.vblk.aio.engine.AioMode;
import io.vblk.aio.linuxaio.LoopSteps;
import io.vblk.aio.sys.Errno;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.file.FileDriver;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * Corrupt and unsupported qcow2 images (made by qemu-img, then patched): each gets a clear open
 * error naming the problem, or, for a bad table entry found while serving, an I/O error — never an
 * exception out of the driver or an access outside the file. Seeded header fuzzing prints its seed.
 *
 * <p>Home thread: the test thread, home of the context each test steps.
 */
@Tag("real")
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class Qcow2CorruptImageTest {
    @TempDir
    Path dir;
    private AioContext ctx;
    private Arena arena;
    private Path good;

    @BeforeEach
    void setUp() {
        ctx = AioContext.forCurrentThread("qcow2-corrupt");
        arena = Arena.ofShared();
        good = QemuImg.create(dir.resolve("good.qcow2"), 16 << 20, null);
        QemuImg.ioOk("-f", "qcow2", "-c", "write -P 0x5c 0 256k", good.toString());
    }

    @AfterEach
    void tearDown() {
        arena.close();
        ctx.close();
    }

    /** A copy of the good image with {@code bytes} written big-endian at {@code off}. */
    private Path patched(String name, long off, long value, int bytes) throws IOException {
        Path p = dir.resolve(name);
        Files.copy(good, p, StandardCopyOption.REPLACE_EXISTING);
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.seek(off);
            for (int i = bytes - 1; i >= 0; i--) {
                f.write((int) (value >>> (8 * i)));
            }
        }
        return p;
    }

    private String openError(Path p) {
        FileDriver f = FileDriver.open(p.toString(), AioMode.THREADS, FileDriver.Cache.WRITEBACK, true);
        try {
            Qcow2Driver q = Qcow2Driver.open(f, null, true, ctx);
            q.close();
            return null;
        } catch (IllegalArgumentException e) {
            return e.getMessage();
        } finally {
            f.close();
        }
    }

    private long l1Offset() throws IOException {
        try (RandomAccessFile f = new RandomAccessFile(good.toFile(), "r")) {
            f.seek(40);
            return f.readLong();
        }
    }

    @Test
    void headerFieldsOutOfRangeOrUnsupportedAreOpenErrors() throws IOException {
        assertThat(openError(good)).isNull();
        assertThat(openError(patched("magic", 0, 0x12345678, 4))).contains("not a qcow2 image");
        assertThat(openError(patched("version", 4, 4, 4))).contains("unsupported qcow2 version 4");
        assertThat(openError(patched("cbits", 20, 30, 4))).contains("cluster_bits 30 out of range");
        assertThat(openError(patched("cbits8", 20, 8, 4))).contains("cluster_bits 8 out of range");
        assertThat(openError(patched("crypt", 32, 1, 4))).contains("encrypted images are not supported");
        assertThat(openError(patched("l1size", 36, 0, 4))).contains("does not cover the virtual size");
        assertThat(openError(patched("l1big", 36, 0x7fffffff, 4))).contains("larger than");
        assertThat(openError(patched("l1off", 40, 1L << 40, 8))).contains("l1_table_offset").contains("past the end");
        assertThat(openError(patched("l1odd", 40, 4096 + 512, 8))).contains("l1_table_offset").contains("multiple of the cluster size");
        assertThat(openError(patched("rtoff", 48, 1L << 50, 8))).contains("refcount_table_offset");
        assertThat(openError(patched("rtzero", 56, 0, 4))).contains("refcount_table_clusters is 0");
        assertThat(openError(patched("snap", 60, 2, 4))).contains("internal snapshots are not supported");
        assertThat(openError(patched("dirty", 72, 1, 8))).contains("dirty");
        assertThat(openError(patched("corruptbit", 72, 2, 8))).contains("marked corrupt");
        assertThat(openError(patched("datafile", 72, 4, 8))).contains("external data files");
        assertThat(openError(patched("compress", 72, 8, 8))).contains("compressed");
        assertThat(openError(patched("extl2", 72, 16, 8))).contains("extended L2");
        assertThat(openError(patched("unknown", 72, 1L << 40, 8))).contains("unknown incompatible feature bits 0x10000000000");
        assertThat(openError(patched("order7", 96, 7, 4))).contains("refcount_order 7 out of range 0..6");
        assertThat(openError(patched("order1", 96, 1, 4))).contains("refcount_bits=2 is not supported");
        assertThat(openError(patched("hlen", 100, 50, 4))).contains("header_length 50 out of range");
        assertThat(openError(patched("size", 24, Long.MAX_VALUE, 8))).contains("too large");
    }

    @Test
    void anL1EntryPastTheEndIsAnOpenError() throws IOException {
        Path p = patched("l1entry", l1Offset(), (1L << 40) | (1L << 63), 8);
        assertThat(openError(p)).contains("L1 entry 0 points at " + (1L << 40)).contains("past the end");
    }

    @Test
    void anL2EntryPastTheEndIsAnIoErrorAndTheImageStaysUsable() throws IOException {
        long l2;
        try (RandomAccessFile f = new RandomAccessFile(good.toFile(), "r")) {
            f.seek(l1Offset());
            l2 = f.readLong() & 0x00ff_ffff_ffff_fe00L;
        }
        Path p = patched("l2entry", l2, (1L << 45) | (1L << 63), 8); // guest cluster 0 -> far past the end
        FileDriver f = FileDriver.open(p.toString(), AioMode.THREADS, FileDriver.Cache.WRITEBACK, false);
        Qcow2Driver q = Qcow2Driver.open(f, null, true, ctx);
        BlockChannel ch = q.openChannel(ctx);
        try {
            assertThat(read(ch, 0)).isEqualTo(-Errno.EIO); // checked before the child is asked
            assertThat(read(ch, 65536)).isEqualTo(4096); // the next cluster is fine
        } finally {
            ch.close();
            q.close();
            f.close();
        }
    }

    private long read(BlockChannel ch, long off) {
        MemorySegment m = arena.allocate(4096, 4096);
        long[] r = {Long.MIN_VALUE};
        BlockIo io = new BlockIo(arena, 1).rw(BlockIo.READ, off, (x, res) -> r[0] = res);
        io.iov.add(m.address(), 4096);
        ch.submit(io);
        LoopSteps.pollUntil(ctx, () -> r[0] != Long.MIN_VALUE, "read completes");
        return r[0];
    }

    /**
     * Random bytes in the header's first 112 bytes: every open either fails with a qcow2 message or
     * succeeds, and a successful one serves reads over the whole device (errors allowed) without throwing.
     */
    @Test
    void fuzzedHeadersGiveOpenErrorsOrAWorkingImage() throws IOException {
        long seed = 515151L;
        System.out.println("qcow2 header fuzz seed " + seed);
        SplittableRandom rnd = new SplittableRandom(seed);
        int opened = 0;
        for (int round = 0; round < 150; round++) {
            int field = rnd.nextInt(112);
            int bytes = 1 + rnd.nextInt(Math.min(8, 112 - field));
            Path p = patched("fuzz", field, rnd.nextLong(), bytes);
            FileDriver f = FileDriver.open(p.toString(), AioMode.THREADS, FileDriver.Cache.WRITEBACK, true);
            try {
                Qcow2Driver q = Qcow2Driver.open(f, null, false, ctx);
                opened++;
                BlockChannel ch = q.openChannel(ctx);
                try {
                    long len = Math.min(q.length(), 64L << 20);
                    for (long off = 0; off + 4096 <= len; off += len / 16 / 4096 * 4096 + 4096) {
                        long r = read(ch, off);
                        assertThat(r == 4096 || r < 0).as("read at %d of round %d: %d", off, round, r).isTrue();
                    }
                } finally {
                    ch.close();
                    q.close();
                }
            } catch (IllegalArgumentException e) {
                assertThat(e.getMessage()).as("round %d", round).startsWith("qcow2: ");
            } finally {
                f.close();
            }
        }
        System.out.println("qcow2 header fuzz: " + opened + " of 150 opened");
    }
}
