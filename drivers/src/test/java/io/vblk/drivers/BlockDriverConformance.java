package io.vblk.drivers;

import io.vblk.aio.AioContext;
import io.vblk.aio.DeferCall;
import io.vblk.aio.linuxaio.LoopSteps;
import io.vblk.aio.sys.Errno;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The contract every {@link BlockDriver} meets, run against each implementation by a concrete
 * subclass: read-after-write at several offsets, multi-segment and misaligned buffers, flush,
 * discard and write-zeroes reading back zeroes, read-only refusal, out-of-range refusal, every
 * request completing exactly once, and drain.
 *
 * <p>Home thread: the test thread, which is the home of the context each test steps.
 */
@Timeout(value = 30, unit = TimeUnit.SECONDS)
public abstract class BlockDriverConformance {
    protected static final long SIZE = 4L << 20;
    protected static final int BLOCK = 4096;

    @TempDir
    protected Path dir;
    protected AioContext ctx;
    protected Arena arena;
    protected BlockDriver driver;
    protected BlockChannel channel;

    /** Opens the driver under test over a {@code size}-byte image (zero-filled) made in {@code dir}. */
    protected abstract BlockDriver openDriver(Path dir, long size, boolean readOnly) throws Exception;

    /** False for drivers that forget writes (null): reads then return zeroes. */
    protected boolean persistsData() {
        return true;
    }

    @BeforeEach
    void openAll() throws Exception {
        ctx = AioContext.forCurrentThread("conformance");
        arena = Arena.ofShared();
        driver = openDriver(dir, SIZE, false);
        channel = driver.openChannel(ctx);
    }

    @AfterEach
    void closeAll() {
        try {
            if (channel != null) {
                LoopSteps.pollUntil(ctx, () -> channel.inFlight() == 0, "channel idle at the end");
                channel.close();
            }
            if (driver != null) {
                driver.close();
            }
        } finally {
            arena.close();
            ctx.close();
        }
    }

    // ---------------------------------------------------------------- helpers

    /** Counts completions per request tag, so a second completion shows up. */
    protected static final class Recorder implements IoCompletion {
        final int[] counts;
        final long[] results;
        int total;

        Recorder(int n) {
            counts = new int[n];
            results = new long[n];
        }

        @Override
        public void ioCompleted(BlockIo io, long result) {
            counts[io.tag]++;
            results[io.tag] = result;
            total++;
        }
    }

    protected BlockIo newIo(int tag) {
        BlockIo io = new BlockIo(arena, 16);
        io.tag = tag;
        return io;
    }

    /** Submits {@code io} and steps the loop until it completes; returns the result. */
    protected long run(BlockChannel ch, BlockIo io) {
        Recorder rec = new Recorder(io.tag + 1);
        io.completion = rec;
        ch.submit(io);
        LoopSteps.pollUntil(ctx, () -> rec.total > 0, BlockIo.opName(io.op) + " completes");
        // One more non-blocking step: a second completion would show now.
        ctx.poll(false);
        assertThat(rec.counts[io.tag]).as("completions of %s", io).isEqualTo(1);
        return rec.results[io.tag];
    }

    protected long run(BlockIo io) {
        return run(channel, io);
    }

    protected MemorySegment buffer(long len, long misalign) {
        MemorySegment m = arena.allocate(len + BLOCK, BLOCK);
        return m.asSlice(misalign, len);
    }

    protected static byte pattern(long deviceOffset, int salt) {
        return (byte) (deviceOffset * 31 + 7 + salt);
    }

    protected static void fill(MemorySegment m, long deviceOffset, int salt) {
        for (long i = 0; i < m.byteSize(); i++) {
            m.set(ValueLayout.JAVA_BYTE, i, pattern(deviceOffset + i, salt));
        }
    }

    /** Asserts {@code m} holds the pattern written at {@code deviceOffset} (zeroes for a forgetting driver). */
    protected void assertPattern(MemorySegment m, long deviceOffset, int salt) {
        for (long i = 0; i < m.byteSize(); i++) {
            byte want = persistsData() ? pattern(deviceOffset + i, salt) : 0;
            if (m.get(ValueLayout.JAVA_BYTE, i) != want) {
                throw new AssertionError("byte at device offset " + (deviceOffset + i) + " is "
                        + m.get(ValueLayout.JAVA_BYTE, i) + ", expected " + want);
            }
        }
    }

    protected static void assertZero(MemorySegment m, long deviceOffset) {
        for (long i = 0; i < m.byteSize(); i++) {
            if (m.get(ValueLayout.JAVA_BYTE, i) != 0) {
                throw new AssertionError("byte at device offset " + (deviceOffset + i) + " is not zero");
            }
        }
    }

    protected long write(long off, MemorySegment... segs) {
        BlockIo io = newIo(0).rw(BlockIo.WRITE, off, null);
        for (MemorySegment s : segs) {
            io.iov.add(s.address(), s.byteSize());
        }
        return run(io);
    }

    protected long read(long off, MemorySegment... segs) {
        BlockIo io = newIo(0).rw(BlockIo.READ, off, null);
        for (MemorySegment s : segs) {
            s.fill((byte) 0x5a); // so a read that does nothing shows
            io.iov.add(s.address(), s.byteSize());
        }
        return run(io);
    }

    // ---------------------------------------------------------------- the contract

    @Test
    void readAfterWriteAtSeveralOffsets() {
        for (long off : new long[] {0, 8 * BLOCK, SIZE / 2 + BLOCK, SIZE - BLOCK}) {
            MemorySegment w = buffer(BLOCK, 0);
            fill(w, off, 1);
            assertThat(write(off, w)).isEqualTo(BLOCK);
            MemorySegment r = buffer(BLOCK, 0);
            assertThat(read(off, r)).isEqualTo(BLOCK);
            assertPattern(r, off, 1);
        }
    }

    @Test
    void multiSegmentIovecs() {
        long off = 16 * BLOCK;
        MemorySegment a = buffer(1024, 0);
        MemorySegment b = buffer(2048, 0);
        MemorySegment c = buffer(5120, 0);
        fill(a, off, 2);
        fill(b, off + 1024, 2);
        fill(c, off + 3072, 2);
        assertThat(write(off, a, b, c)).isEqualTo(8192);
        MemorySegment x = buffer(512, 0);
        MemorySegment y = buffer(7680, 0);
        assertThat(read(off, x, y)).isEqualTo(8192);
        assertPattern(x, off, 2);
        assertPattern(y, off + 512, 2);
    }

    @Test
    void misalignedBuffersOffsetsAndLengths() {
        long base = 32 * BLOCK;
        MemorySegment around = buffer(3 * BLOCK, 0);
        fill(around, base, 3);
        assertThat(write(base, around)).isEqualTo(3 * BLOCK);
        // Buffer 3 bytes off alignment; offset and length not multiples of 512.
        long off = base + 700;
        MemorySegment w = buffer(5000, 3);
        fill(w, off, 4);
        assertThat(write(off, w)).isEqualTo(5000);
        MemorySegment r = buffer(5000, 5);
        assertThat(read(off, r)).isEqualTo(5000);
        assertPattern(r, off, 4);
        // The bytes around the misaligned write are untouched.
        MemorySegment all = buffer(3 * BLOCK, 0);
        assertThat(read(base, all)).isEqualTo(3 * BLOCK);
        assertPattern(all.asSlice(0, 700), base, 3);
        assertPattern(all.asSlice(700 + 5000), base + 700 + 5000, 3);
        // Aligned offset, misaligned buffer.
        MemorySegment m = buffer(BLOCK, 1);
        fill(m, base, 5);
        assertThat(write(base, m)).isEqualTo(BLOCK);
        MemorySegment mr = buffer(BLOCK, 7);
        assertThat(read(base, mr)).isEqualTo(BLOCK);
        assertPattern(mr, base, 5);
    }

    @Test
    void flushCompletesWithZero() {
        MemorySegment w = buffer(BLOCK, 0);
        fill(w, 0, 6);
        assertThat(write(0, w)).isEqualTo(BLOCK);
        assertThat(run(newIo(0).range(BlockIo.FLUSH, 0, 0, 0, null))).isZero();
    }

    @Test
    void fuaWriteCompletesWithItsLength() {
        BlockIo io = newIo(0).rw(BlockIo.WRITE, BLOCK, null);
        io.flags = BlockIo.FLAG_FUA;
        MemorySegment w = buffer(BLOCK, 0);
        fill(w, BLOCK, 12);
        io.iov.add(w.address(), BLOCK);
        assertThat(run(io)).isEqualTo(BLOCK);
        MemorySegment r = buffer(BLOCK, 0);
        assertThat(read(BLOCK, r)).isEqualTo(BLOCK);
        assertPattern(r, BLOCK, 12);
    }

    private void zeroesInTheMiddle(int op, int flags) {
        long base = 64 * BLOCK;
        MemorySegment w = buffer(16 * BLOCK, 0);
        fill(w, base, 7);
        assertThat(write(base, w)).isEqualTo(16 * BLOCK);
        assertThat(driver.supportsDiscard() || op != BlockIo.DISCARD).isTrue();
        assertThat(run(newIo(0).range(op, base + 4 * BLOCK, 8 * BLOCK, flags, null))).isZero();
        MemorySegment r = buffer(16 * BLOCK, 0);
        assertThat(read(base, r)).isEqualTo(16 * BLOCK);
        assertPattern(r.asSlice(0, 4 * BLOCK), base, 7);
        assertZero(r.asSlice(4 * BLOCK, 8 * BLOCK), base + 4 * BLOCK);
        assertPattern(r.asSlice(12 * BLOCK), base + 12 * BLOCK, 7);
    }

    @Test
    void discardReadsBackZeroes() {
        zeroesInTheMiddle(BlockIo.DISCARD, 0);
    }

    @Test
    void writeZeroesReadsBackZeroes() {
        zeroesInTheMiddle(BlockIo.WRITE_ZEROES, 0);
    }

    @Test
    void writeZeroesWithUnmapReadsBackZeroes() {
        zeroesInTheMiddle(BlockIo.WRITE_ZEROES, BlockIo.FLAG_MAY_UNMAP);
    }

    /**
     * SECURE_ERASE: a driver that serves it leaves the range reading back zeroes (the file driver
     * overwrites a regular file with zeroes and syncs) and refuses a range past the end; one that
     * does not serve it refuses it with -EOPNOTSUPP, completing it exactly once.
     */
    @Test
    void secureEraseReadsBackZeroesOrIsRefused() {
        if (driver.supportsSecureErase()) {
            zeroesInTheMiddle(BlockIo.SECURE_ERASE, 0);
            assertThat(run(newIo(0).range(BlockIo.SECURE_ERASE, SIZE - BLOCK, 2 * BLOCK, 0, null)))
                    .isEqualTo(-Errno.EINVAL);
            assertThat(run(newIo(0).range(BlockIo.SECURE_ERASE, 0, 0, 0, null))).isZero();
        } else {
            assertThat(run(newIo(0).range(BlockIo.SECURE_ERASE, 0, BLOCK, 0, null))).isEqualTo(-Errno.EOPNOTSUPP);
        }
    }

    @Test
    void misalignedWriteZeroes() {
        long base = 128 * BLOCK;
        MemorySegment w = buffer(4 * BLOCK, 0);
        fill(w, base, 8);
        assertThat(write(base, w)).isEqualTo(4 * BLOCK);
        assertThat(run(newIo(0).range(BlockIo.WRITE_ZEROES, base + 1000, 6000, 0, null))).isZero();
        MemorySegment r = buffer(4 * BLOCK, 0);
        assertThat(read(base, r)).isEqualTo(4 * BLOCK);
        assertPattern(r.asSlice(0, 1000), base, 8);
        assertZero(r.asSlice(1000, 6000), base + 1000);
        assertPattern(r.asSlice(7000), base + 7000, 8);
    }

    @Test
    void readOnlyRefusesWritesAndServesReads() throws Exception {
        MemorySegment w = buffer(BLOCK, 0);
        fill(w, 0, 9);
        assertThat(write(0, w)).isEqualTo(BLOCK);
        assertThat(run(newIo(0).range(BlockIo.FLUSH, 0, 0, 0, null))).isZero();
        try (BlockDriver ro = openDriver(dir, SIZE, true)) {
            assertThat(ro.readOnly()).isTrue();
            BlockChannel ch = ro.openChannel(ctx);
            try {
                BlockIo wr = newIo(0).rw(BlockIo.WRITE, 0, null);
                wr.iov.add(w.address(), BLOCK);
                assertThat(run(ch, wr)).isEqualTo(-Errno.EROFS);
                assertThat(run(ch, newIo(0).range(BlockIo.DISCARD, 0, BLOCK, 0, null))).isEqualTo(-Errno.EROFS);
                assertThat(run(ch, newIo(0).range(BlockIo.WRITE_ZEROES, 0, BLOCK, 0, null))).isEqualTo(-Errno.EROFS);
                // A read-only image never serves secure erase (refused as unsupported or read-only).
                assertThat(ro.supportsSecureErase()).isFalse();
                assertThat(run(ch, newIo(0).range(BlockIo.SECURE_ERASE, 0, BLOCK, 0, null)))
                        .isIn((long) -Errno.EOPNOTSUPP, (long) -Errno.EROFS);
                assertThat(run(ch, newIo(0).range(BlockIo.FLUSH, 0, 0, 0, null))).isZero();
                MemorySegment r = buffer(BLOCK, 0);
                BlockIo rd = newIo(0).rw(BlockIo.READ, 0, null);
                rd.iov.add(r.address(), BLOCK);
                assertThat(run(ch, rd)).isEqualTo(BLOCK);
                assertPattern(r, 0, 9);
            } finally {
                ch.close();
            }
        }
    }

    @Test
    void outOfRangeAndUnknownOpsAreRefusedOnce() {
        MemorySegment b = buffer(BLOCK, 0);
        BlockIo past = newIo(0).rw(BlockIo.READ, SIZE, null);
        past.iov.add(b.address(), BLOCK);
        assertThat(run(past)).isEqualTo(-Errno.EINVAL);
        BlockIo crossing = newIo(0).rw(BlockIo.WRITE, SIZE - 512, null);
        crossing.iov.add(b.address(), BLOCK);
        assertThat(run(crossing)).isEqualTo(-Errno.EINVAL);
        assertThat(run(newIo(0).range(BlockIo.DISCARD, SIZE - BLOCK, 2 * BLOCK, 0, null))).isEqualTo(-Errno.EINVAL);
        assertThat(run(newIo(0).range(BlockIo.WRITE_ZEROES, -BLOCK, BLOCK, 0, null))).isEqualTo(-Errno.EINVAL);
        assertThat(run(newIo(0).range(99, 0, 0, 0, null))).isEqualTo(-Errno.EOPNOTSUPP);
    }

    @Test
    void manyRequestsInOneSectionEachCompleteExactlyOnce() {
        int n = 200;
        Recorder rec = new Recorder(n);
        BlockIo[] ios = new BlockIo[n];
        MemorySegment[] bufs = new MemorySegment[n];
        DeferCall dc = ctx.deferCall();
        dc.begin();
        for (int i = 0; i < n; i++) {
            long off = (long) i * BLOCK;
            bufs[i] = buffer(BLOCK, 0);
            fill(bufs[i], off, 10);
            ios[i] = newIo(i).rw(BlockIo.WRITE, off, rec);
            ios[i].iov.add(bufs[i].address(), BLOCK);
            channel.submit(ios[i]);
        }
        dc.end();
        LoopSteps.pollUntil(ctx, () -> rec.total >= n, n + " writes");
        ctx.poll(false);
        assertThat(rec.counts).containsOnly(1);
        assertThat(rec.results).containsOnly((long) BLOCK);
        assertThat(channel.inFlight()).isZero();

        Recorder rrec = new Recorder(n);
        dc.begin();
        for (int i = 0; i < n; i++) {
            bufs[i].fill((byte) 0x5a);
            ios[i].rw(BlockIo.READ, (long) i * BLOCK, rrec);
            ios[i].iov.add(bufs[i].address(), BLOCK);
            channel.submit(ios[i]);
        }
        dc.end();
        LoopSteps.pollUntil(ctx, () -> rrec.total >= n, n + " reads");
        ctx.poll(false);
        assertThat(rrec.counts).containsOnly(1);
        for (int i = 0; i < n; i++) {
            assertPattern(bufs[i], (long) i * BLOCK, 10);
        }
    }

    @Test
    void drainRunsOnceWhenTheLastRequestCompletes() {
        int[] drained = {0};
        channel.drain(() -> drained[0]++);
        assertThat(drained[0]).as("idle channel drains at once").isEqualTo(1);

        int n = 50;
        Recorder rec = new Recorder(n);
        int[] inFlightAtDrain = {-1};
        int[] completedAtDrain = {-1};
        DeferCall dc = ctx.deferCall();
        dc.begin();
        for (int i = 0; i < n; i++) {
            MemorySegment b = buffer(BLOCK, 0);
            BlockIo io = newIo(i).rw(i % 2 == 0 ? BlockIo.READ : BlockIo.WRITE, (long) i * BLOCK, rec);
            io.iov.add(b.address(), BLOCK);
            channel.submit(io);
        }
        dc.end();
        if (channel.inFlight() > 0) {
            channel.drain(() -> {
                drained[0]++;
                inFlightAtDrain[0] = channel.inFlight();
                completedAtDrain[0] = rec.total;
            });
            LoopSteps.pollUntil(ctx, () -> drained[0] == 2, "drain callback");
            assertThat(inFlightAtDrain[0]).isZero();
            assertThat(completedAtDrain[0]).isEqualTo(n);
        }
        ctx.poll(false);
        assertThat(rec.counts).containsOnly(1);
        assertThat(channel.inFlight()).isZero();
    }
}
