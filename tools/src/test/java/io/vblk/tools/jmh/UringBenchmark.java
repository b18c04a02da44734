package io.vblk.tools.jmh;

import io.netty.channel.IoEvent;
import io.netty.channel.IoEventLoop;
import io.netty.channel.IoRegistration;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.uring.IoUringIoEvent;
import io.netty.channel.uring.IoUringIoHandle;
import io.netty.channel.uring.IoUringIoHandler;
import io.netty.channel.uring.IoUringIoOps;
import io.vblk.aio.AioContext;
import io.vblk.aio.sys.FileIo;
import io.vblk.aio.uring.IoUring;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.lang.foreign.Arena;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

/**
 * The two ways issue 10 names for an io_uring engine, per request: vblk's own ring ({@link IoUring}:
 * FFM downcalls to the raw system calls, SQ/CQ rings as memory segments) against Netty 4.2's
 * io_uring transport ({@code IoUringIoOps} submitted from an {@code IoUringIoHandle} registered on
 * an {@code IoUringIoHandler} loop). Requests are NOPs (the cost of the machinery alone) and 4 KiB
 * reads of a page-cached file (copy included), in batches of {@value #BATCH} submitted with one
 * {@code io_uring_enter}; for vblk's ring also 4 KiB O_DIRECT reads ({@code ffmDirectRead4k}), into
 * plain or registered buffers ({@link Buffers}).
 *
 * <ul>
 *   <li>{@code ffm*}: on the benchmark thread, which is the ring's context home thread, as on an
 *       IoThread: prepare {@value #BATCH}, submit, reap, then one non-blocking loop iteration (where
 *       the {@code EVENTFD} wake-up reads the eventfd the kernel signalled), {@value #ROUNDS}
 *       batches per invocation; for both {@link IoUring.Wake} modes, with and without the file
 *       registered (fixed files). {@code ffmNopRingOnly} leaves the loop's turn out: the ring alone.</li>
 *   <li>{@code netty*}: the same {@value #ROUNDS} batches run inside the Netty loop's thread (each
 *       batch submitted from the completion of the one before); the benchmark thread hands the
 *       run over once and parks until it ends, so the hand-over costs little per request. This is
 *       Netty at its best.</li>
 *   <li>{@code netty*Handoff}: one batch per hand-over, as vblk would pay: its IoThreads run Netty's
 *       <em>epoll</em> handler, so a Netty io_uring loop is another thread, and each batch crosses
 *       to it and each completion batch crosses back.</li>
 * </ul>
 *
 * <p>Besides the wall-clock score, each trial prints the CPU time per request of the threads doing
 * the work (the benchmark thread; for Netty also its loop thread), user and system time, median
 * over the measured iterations: on a shared, loaded machine a thread that is preempted loses wall
 * time but not CPU time, so this is the steadier figure of the two.
 *
 * <p>Run: {@code scripts/jmh.sh UringBenchmark -prof gc} (ns per request; {@code gc.alloc.rate.norm}
 * is bytes per request).
 *
 * <p>Measured on 2026-12-04 (2-vCPU VM, kernel 6.18, JDK 25, load average 6-15 from other builds),
 * CPU ns per request, medians of four runs: NOP: ring alone about 110-145, ring plus the loop's
 * turn 210 (EVENTFD) / 165 (RING_FD), Netty on its own loop 115-170, Netty with the hand-over
 * 660-690; 4 KiB read: 440-470 (EVENTFD) / 410-510 (RING_FD), Netty on its own loop 360-620,
 * Netty with the hand-over 850-1300. Fixed files: no difference above the noise (about 50 ns).
 * Registered buffers ({@code -p buffers=plain,fixed,vfixed}, RING_FD, medians of 10 forks): 4 KiB
 * O_DIRECT read ({@code ffmDirectRead4k}) 2045 CPU ns plain, 1488 READ_FIXED, 1531 READV_FIXED;
 * page cache no difference (404 / 440 / 434). All variants allocate under 1 byte per request.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class UringBenchmark {
    static final int BATCH = 32;
    static final int ROUNDS = 64;
    static final int BLOCK = 4096;
    static final long FILE_BYTES = 1L << 20;
    static final int BLOCKS = (int) (FILE_BYTES / BLOCK);
    static final ThreadMXBean THREADS = ManagementFactory.getThreadMXBean();

    /** CPU nanoseconds per request of some threads, per iteration; the median is printed at the end. */
    static final class CpuMeter {
        private final long[] perIteration = new long[64];
        private int iterations;
        private long cpu0;
        private long n0;

        void start(long cpu, long completed) {
            cpu0 = cpu;
            n0 = completed;
        }

        void stop(long cpu, long completed) {
            if (completed > n0 && iterations < perIteration.length) {
                perIteration[iterations++] = (cpu - cpu0) / (completed - n0);
            }
        }

        /** Median of the last {@code measured} iterations (the warm-up ones come first). */
        String report(int measured) {
            int from = Math.max(0, iterations - measured);
            long[] m = Arrays.copyOfRange(perIteration, from, iterations);
            Arrays.sort(m);
            return m.length == 0 ? "n/a" : m[m.length / 2] + " cpu ns/request (iterations " + Arrays.toString(
                    Arrays.copyOfRange(perIteration, from, iterations)) + ")";
        }
    }

    /**
     * A file (page-cached, or opened O_DIRECT so every read goes to the disk) and {@value #BATCH}
     * one-segment iovecs over distinct 4 KiB buffers of one region ({@link #bufs}, the one a ring
     * registers for the fixed reads, as guest RAM would be).
     */
    static final class Target {
        final Arena arena = Arena.ofShared();
        final Path path;
        final int fd;
        final MemorySegment bufs;
        final MemorySegment iovs;

        Target() throws Exception {
            this(false);
        }

        Target(boolean direct) throws Exception {
            path = Files.createTempFile("vblk-uring-bench-", ".raw");
            fd = FileIo.open(path.toString(), FileIo.O_RDWR | FileIo.O_CLOEXEC | (direct ? FileIo.O_DIRECT : 0), 0);
            MemorySegment b = arena.allocate(FILE_BYTES, BLOCK);
            b.fill((byte) 1);
            if (FileIo.pwrite(fd, b.address(), FILE_BYTES, 0) != FILE_BYTES) {
                throw new IllegalStateException("cannot write " + path);
            }
            bufs = arena.allocate((long) BATCH * BLOCK, BLOCK);
            iovs = arena.allocate(16L * BATCH, 8);
            for (int i = 0; i < BATCH; i++) {
                iovs.set(ValueLayout.JAVA_LONG, 16L * i, bufs.address() + (long) i * BLOCK);
                iovs.set(ValueLayout.JAVA_LONG, 16L * i + 8, BLOCK);
            }
        }

        long iov(int i) {
            return iovs.address() + 16L * i;
        }

        long buf(int i) {
            return bufs.address() + (long) i * BLOCK;
        }

        /** Offset of request {@code i} of round {@code round}: walks the whole file. */
        static long offset(int round, int i) {
            return (long) ((round * BATCH + i) % BLOCKS) * BLOCK;
        }

        void close() throws Exception {
            FileIo.close(fd);
            arena.close();
            Files.deleteIfExists(path);
        }
    }

    // ---------------------------------------------------------------- vblk's FFM ring

    /** How a read names its memory: an iovec array (READV), or a registered buffer. */
    public enum Buffers {
        /** IORING_OP_READV over plain memory: the kernel looks up and pins the pages per request. */
        plain,
        /** IORING_OP_READ_FIXED, one contiguous range of the registered buffer. */
        fixed,
        /** IORING_OP_READV_FIXED (Linux 6.15): the iovec array, its segments inside the registered buffer. */
        vfixed
    }

    @State(Scope.Thread)
    public static class Ffm implements IoUring.Completion {
        /** How completions wake the loop; both are measured (EVENTFD wakes once more per batch). */
        @Param({"EVENTFD", "RING_FD"})
        public IoUring.Wake wake;
        /**
         * Whether the file is registered with the ring (IORING_REGISTER_FILES, IOSQE_FIXED_FILE); add
         * {@code -p fixedFiles=false,true} to measure it (it did not pay measurably here).
         */
        @Param({"false"})
        public boolean fixedFiles;
        /**
         * Reads into plain memory or a registered buffer (IORING_REGISTER_BUFFERS of the target's
         * region); add {@code -p buffers=plain,fixed,vfixed} to compare.
         */
        @Param({"plain"})
        public Buffers buffers;
        AioContext ctx;
        IoUring ring;
        Target target;
        /** The same over an O_DIRECT file ({@code ffmDirectRead4k}). */
        Target direct;
        /** Requests per round that the disk has not answered yet at the first look (O_DIRECT). */
        long waited;
        final Integer[] tags = new Integer[BATCH];
        long completed;
        long failed;
        int round;
        final CpuMeter cpu = new CpuMeter();

        @Setup(Level.Iteration)
        public void iterationStart() {
            cpu.start(THREADS.getCurrentThreadCpuTime(), completed);
        }

        @TearDown(Level.Iteration)
        public void iterationEnd() {
            cpu.stop(THREADS.getCurrentThreadCpuTime(), completed);
        }

        @Setup(Level.Trial)
        public void setUp() throws Exception {
            ctx = AioContext.forCurrentThread("uring-bench");
            ring = IoUring.open(ctx, 2 * BATCH, this, null, false, wake);
            target = new Target();
            direct = new Target(true);
            for (int i = 0; i < BATCH; i++) {
                tags[i] = i;
            }
            if (fixedFiles && ring.registerFiles(target.fd, direct.fd) != 0) {
                throw new IllegalStateException("IORING_REGISTER_FILES refused");
            }
            if (buffers != Buffers.plain) {
                int r = ring.buffers().register(target.bufs, direct.bufs);
                if (r != 0) {
                    throw new IllegalStateException("IORING_REGISTER_BUFFERS refused: " + r);
                }
            }
        }

        @Override
        public void uringCompleted(Object request, long result) {
            completed++;
            if (result < 0) {
                failed++;
            }
        }

        /** Prepare, submit and reap only: the ring's own cost, without the event loop's turn. */
        void ringOnly() {
            long want = completed + BATCH;
            for (int i = 0; i < BATCH; i++) {
                if (!ring.prepareNop(tags[i])) {
                    throw new IllegalStateException("ring full: " + ring);
                }
            }
            ring.submit();
            ring.reap();
            if (completed < want) {
                throw new IllegalStateException("NOPs did not complete inside the enter");
            }
        }

        /** One read of 4 KiB into buffer {@code i} of {@code t}, as {@link #buffers} says. */
        boolean prepareRead(Target t, int bufIndex, int i, long offset) {
            return switch (buffers) {
                case plain -> ring.prepareReadv(t.fd, t.iov(i), 1, offset, tags[i]);
                case fixed -> ring.buffers().prepareReadFixed(t.fd, t.buf(i), BLOCK, offset, bufIndex, tags[i]);
                case vfixed -> ring.buffers().prepareReadvFixed(t.fd, t.iov(i), 1, offset, bufIndex, tags[i]);
            };
        }

        /** A batch of NOPs ({@code t} null) or reads of {@code t} (buffer 0: page cache, 1: O_DIRECT). */
        void batch(Target t) {
            long want = completed + BATCH;
            int r = round++;
            int bufIndex = t == direct ? 1 : 0;
            for (int i = 0; i < BATCH; i++) {
                boolean ok = t != null ? prepareRead(t, bufIndex, i, Target.offset(r, i)) : ring.prepareNop(tags[i]);
                if (!ok) {
                    throw new IllegalStateException("ring full: " + ring);
                }
            }
            ring.submit();
            ring.reap();
            ctx.poll(false); // the loop's turn: the completion eventfd the kernel signalled
            if (completed < want) {
                waited += want - completed;
            }
            while (completed < want) {
                ctx.poll(true);
            }
        }

        @TearDown(Level.Trial)
        public void tearDown() throws Exception {
            System.out.printf("%nffm wake=%s fixedFiles=%s buffers=%s: %d requests, %d failed, %d waited for, %s; %s%n",
                    wake, fixedFiles, buffers, completed, failed, waited, ring.counters(), cpu.report(5));
            if (failed > 0) {
                throw new IllegalStateException(failed + " requests failed");
            }
            ring.close();
            ctx.close();
            target.close();
            direct.close();
        }
    }

    @Benchmark
    @OperationsPerInvocation(BATCH * ROUNDS)
    public long ffmNop(Ffm s) {
        for (int k = 0; k < ROUNDS; k++) {
            s.batch(null);
        }
        return s.completed;
    }

    @Benchmark
    @OperationsPerInvocation(BATCH * ROUNDS)
    public long ffmNopRingOnly(Ffm s) {
        for (int k = 0; k < ROUNDS; k++) {
            s.ringOnly();
        }
        return s.completed;
    }

    @Benchmark
    @OperationsPerInvocation(BATCH * ROUNDS)
    public long ffmRead4k(Ffm s) {
        for (int k = 0; k < ROUNDS; k++) {
            s.batch(s.target);
        }
        return s.completed;
    }

    /** 4 KiB O_DIRECT reads: the disk's latency, and for plain memory the page pinning per request. */
    @Benchmark
    @OperationsPerInvocation(BATCH * ROUNDS)
    public long ffmDirectRead4k(Ffm s) {
        for (int k = 0; k < ROUNDS; k++) {
            s.batch(s.direct);
        }
        return s.completed;
    }

    // ---------------------------------------------------------------- Netty's io_uring transport

    /**
     * Home thread: the Netty loop's thread; the benchmark thread only reads {@link #runsDone}.
     *
     * <p>Submits a batch, and the next one when the last CQE of it arrives.
     */
    static final class NettyDriver implements IoUringIoHandle {
        IoRegistration reg;
        Target target;
        boolean read;
        int roundsLeft;
        int outstanding;
        int round;
        long completed;
        long failed;
        volatile long runsDone;
        volatile Thread waiter;

        final Runnable startRun = this::startRun;
        int roundsPerRun;

        void startRun() {
            roundsLeft = roundsPerRun;
            submitBatch();
        }

        void submitBatch() {
            int r = round++;
            for (int i = 0; i < BATCH; i++) {
                // (opcode, flags, ioprio, fd, off, addr, len, rw_flags, data, buf_index, personality,
                //  splice_fd_in, addr3): the SQE fields in struct order; data comes back in the event.
                IoUringIoOps op = read
                        ? new IoUringIoOps((byte) 1 /* IORING_OP_READV */, (byte) 0, (short) 0, target.fd,
                        Target.offset(r, i), target.iov(i), 1, 0, (short) i, (short) 0, (short) 0, 0, 0L)
                        : new IoUringIoOps((byte) 0 /* IORING_OP_NOP */, (byte) 0, (short) 0, -1, 0L, 0L, 0, 0,
                        (short) i, (short) 0, (short) 0, 0, 0L);
                reg.submit(op);
            }
            outstanding = BATCH;
        }

        @Override
        public void handle(IoRegistration registration, IoEvent ioEvent) {
            IoUringIoEvent ev = (IoUringIoEvent) ioEvent;
            completed++;
            if (ev.res() < 0) {
                failed++;
            }
            if (--outstanding == 0) {
                if (--roundsLeft > 0) {
                    submitBatch();
                } else {
                    runsDone = runsDone + 1; // only the loop thread writes
                    LockSupport.unpark(waiter);
                }
            }
        }

        @Override
        public void close() {
        }
    }

    @State(Scope.Thread)
    public static class Netty {
        MultiThreadIoEventLoopGroup group;
        IoEventLoop loop;
        NettyDriver driver;
        Target target;
        long loopThread;
        final CpuMeter cpu = new CpuMeter();

        private long cpuBoth() {
            return THREADS.getCurrentThreadCpuTime() + THREADS.getThreadCpuTime(loopThread);
        }

        private long completedNow() throws Exception {
            return loop.submit(() -> driver.completed).sync().getNow();
        }

        @Setup(Level.Iteration)
        public void iterationStart() throws Exception {
            cpu.start(cpuBoth(), completedNow());
        }

        @TearDown(Level.Iteration)
        public void iterationEnd() throws Exception {
            cpu.stop(cpuBoth(), completedNow());
        }

        @Setup(Level.Trial)
        public void setUp() throws Exception {
            io.netty.channel.uring.IoUring.ensureAvailability();
            group = new MultiThreadIoEventLoopGroup(1, IoUringIoHandler.newFactory());
            loop = (IoEventLoop) group.next();
            loopThread = loop.submit(() -> Thread.currentThread().threadId()).sync().getNow();
            target = new Target();
            driver = new NettyDriver();
            driver.target = target;
            driver.reg = loop.register(driver).sync().getNow();
        }

        long run(boolean read, int rounds) {
            NettyDriver d = driver;
            d.read = read;
            d.roundsPerRun = rounds;
            d.waiter = Thread.currentThread();
            long target = d.runsDone + 1;
            loop.execute(d.startRun);
            while (d.runsDone < target) {
                LockSupport.parkNanos(1_000_000);
            }
            return d.runsDone;
        }

        @TearDown(Level.Trial)
        public void tearDown() throws Exception {
            long[] facts = loop.submit(() -> new long[] {driver.completed, driver.failed}).sync().getNow();
            System.out.printf("%nnetty: %d requests, %d failed; %s%n", facts[0], facts[1], cpu.report(5));
            loop.submit(() -> driver.reg.cancel()).sync();
            group.shutdownGracefully(0, 1, TimeUnit.SECONDS).sync();
            target.close();
            if (facts[1] > 0) {
                throw new IllegalStateException(facts[1] + " requests failed");
            }
        }
    }

    @Benchmark
    @OperationsPerInvocation(BATCH * ROUNDS)
    public long nettyNop(Netty s) {
        return s.run(false, ROUNDS);
    }

    @Benchmark
    @OperationsPerInvocation(BATCH * ROUNDS)
    public long nettyRead4k(Netty s) {
        return s.run(true, ROUNDS);
    }

    @Benchmark
    @OperationsPerInvocation(BATCH)
    public long nettyNopHandoff(Netty s) {
        return s.run(false, 1);
    }

    @Benchmark
    @OperationsPerInvocation(BATCH)
    public long nettyRead4kHandoff(Netty s) {
        return s.run(true, 1);
    }
}
