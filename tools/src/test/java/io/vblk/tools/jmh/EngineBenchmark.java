package io.vblk.tools.jmh;

import com.sun.jna.Native;
import com.sun.jna.NativeLibrary;
import com.sun.jna.Platform;
import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.DeferCall;
import io.vblk.aio.NanoClock;
import io.vblk.aio.engine.AioMode;
import io.vblk.aio.engine.IoRequest;
import io.vblk.aio.engine.SubmissionQueue;
import io.vblk.aio.linuxaio.LinuxAio;
import io.vblk.aio.sys.Sys;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.BlockIo;
import io.vblk.drivers.IoCompletion;
import io.vblk.drivers.file.FileDriver;
import io.vblk.drivers.nullblk.NullDriver;
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
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

/**
 * The storage request path, a batch of {@value #BATCH} 4 KiB reads per invocation (results are per
 * request): submitted inside one defer-call section, so the batch goes down in one submission, and
 * completed before the invocation returns. Against the null driver (sync and async completion),
 * the Linux AIO engine on its own over a page-cached file, and the file driver (aio=native and
 * aio=threads, cache=writeback) over the same file. {@code -prof gc} shows the bytes allocated per
 * request; the io_submit calls per request are printed at the end of each trial.
 *
 * <p>Also, for the record, one system call (an eventfd write, an io_getevents poll) through FFM
 * (the {@code Sys} facade) and through JNA direct mapping.
 *
 * <p>Run: {@code scripts/jmh.sh EngineBenchmark -prof gc}
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = "--enable-native-access=ALL-UNNAMED")
public class EngineBenchmark {
    static final int BATCH = 32;
    static final int BLOCK = 4096;
    static final long FILE_BYTES = 1L << 20;

    /** Fails the run rather than measuring a batch that did not complete. */
    private static void stepUntil(AioContext ctx, int[] done, int want) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (done[0] < want) {
            ctx.poll(false);
            if (System.nanoTime() - deadline > 0) {
                throw new IllegalStateException("batch did not complete: " + done[0] + "/" + want);
            }
        }
    }

    /** A page-cached image file, created and read once so every page is resident. */
    private static Path cachedImage(Arena arena) throws Exception {
        Path p = Files.createTempFile("vblk-bench-", ".raw");
        int fd = Sys.open(p.toString(), Sys.O_RDWR | Sys.O_CLOEXEC, 0);
        MemorySegment b = arena.allocate(FILE_BYTES, BLOCK);
        b.fill((byte) 1);
        Sys.pwrite(fd, b.address(), FILE_BYTES, 0);
        Sys.pread(fd, b.address(), FILE_BYTES, 0);
        Sys.close(fd);
        return p;
    }

    // ---------------------------------------------------------------- drivers through BlockChannel

    @State(Scope.Thread)
    public static class DriverState implements IoCompletion {
        @Param({"null-sync", "null-async", "file-native", "file-threads"})
        public String driver;

        AioContext ctx;
        DeferCall dc;
        Arena arena;
        BlockDriver d;
        BlockChannel ch;
        SubmissionQueue engine;
        Path image;
        final BlockIo[] ios = new BlockIo[BATCH];
        final long[] bufs = new long[BATCH];
        final int[] done = {0};
        long requests;
        long submitsBefore;

        @Setup(Level.Trial)
        public void setup() throws Exception {
            ctx = new AioContext("bench", Thread.currentThread(), NanoClock.SYSTEM, AioOptions.DEFAULT);
            dc = ctx.deferCall();
            arena = Arena.ofShared();
            switch (driver) {
                case "null-sync" -> d = new NullDriver(FILE_BYTES, NullDriver.Completion.SYNC);
                case "null-async" -> d = new NullDriver(FILE_BYTES, NullDriver.Completion.ASYNC);
                default -> {
                    image = cachedImage(arena);
                    d = FileDriver.open(image.toString(), driver.equals("file-native") ? AioMode.NATIVE
                            : AioMode.THREADS, FileDriver.Cache.WRITEBACK, false);
                }
            }
            ch = d.openChannel(ctx);
            if (driver.equals("file-native")) {
                engine = LinuxAio.of(ctx);
                submitsBefore = engine.submitCalls();
            }
            for (int i = 0; i < BATCH; i++) {
                ios[i] = new BlockIo(arena, 1);
                bufs[i] = arena.allocate(BLOCK, BLOCK).address();
            }
        }

        @Override
        public void ioCompleted(BlockIo io, long result) {
            done[0]++;
        }

        @TearDown(Level.Trial)
        public void tearDown() throws Exception {
            if (engine != null) {
                System.out.printf("%n[file-native] io_submit calls per request: %.4f (%d calls, %d requests)%n",
                        (double) (engine.submitCalls() - submitsBefore) / requests,
                        engine.submitCalls() - submitsBefore, requests);
                engine.release();
            }
            ch.close();
            d.close();
            ctx.close();
            arena.close();
            if (image != null) {
                Files.deleteIfExists(image);
            }
        }
    }

    @Benchmark
    @OperationsPerInvocation(BATCH)
    public int driverBatch(DriverState s) {
        s.done[0] = 0;
        s.dc.begin();
        for (int i = 0; i < BATCH; i++) {
            BlockIo io = s.ios[i].rw(BlockIo.READ, (long) i * BLOCK, s);
            io.iov.add(s.bufs[i], BLOCK);
            s.ch.submit(io);
        }
        s.dc.end();
        stepUntil(s.ctx, s.done, BATCH);
        s.requests += BATCH;
        return s.done[0];
    }

    // ---------------------------------------------------------------- the engine alone

    @State(Scope.Thread)
    public static class EngineState implements IoRequest.Completion {
        AioContext ctx;
        DeferCall dc;
        Arena arena;
        SubmissionQueue engine;
        Path image;
        int fd;
        final IoRequest[] reqs = new IoRequest[BATCH];
        long iovs;
        final int[] done = {0};
        long requests;

        @Setup(Level.Trial)
        public void setup() throws Exception {
            ctx = new AioContext("bench", Thread.currentThread(), NanoClock.SYSTEM, AioOptions.DEFAULT);
            dc = ctx.deferCall();
            arena = Arena.ofShared();
            image = cachedImage(arena);
            fd = Sys.open(image.toString(), Sys.O_RDWR | Sys.O_CLOEXEC, 0);
            engine = LinuxAio.of(ctx);
            MemorySegment iov = arena.allocate(16L * BATCH, 8);
            for (int i = 0; i < BATCH; i++) {
                reqs[i] = new IoRequest();
                iov.set(java.lang.foreign.ValueLayout.JAVA_LONG, 16L * i, arena.allocate(BLOCK, BLOCK).address());
                iov.set(java.lang.foreign.ValueLayout.JAVA_LONG, 16L * i + 8, BLOCK);
            }
            iovs = iov.address();
        }

        @Override
        public void aioCompleted(IoRequest req, long result) {
            done[0]++;
        }

        @TearDown(Level.Trial)
        public void tearDown() throws Exception {
            System.out.printf("%n[engine] io_submit calls per request: %.4f; completion passes per request: %.4f;"
                            + " completion mode %s%n", (double) engine.submitCalls() / requests,
                    (double) engine.completionPasses() / requests, LinuxAio.backendOf(engine).completionMode());
            engine.release();
            Sys.close(fd);
            ctx.close();
            arena.close();
            Files.deleteIfExists(image);
        }
    }

    @Benchmark
    @OperationsPerInvocation(BATCH)
    public int linuxAioPageCacheBatch(EngineState s) {
        s.done[0] = 0;
        s.dc.begin();
        for (int i = 0; i < BATCH; i++) {
            s.engine.submit(s.reqs[i].readv(s.fd, s.iovs + 16L * i, 1, (long) i * BLOCK, s), BATCH);
        }
        s.dc.end();
        stepUntil(s.ctx, s.done, BATCH);
        s.requests += BATCH;
        return s.done[0];
    }

    // ---------------------------------------------------------------- one call: FFM vs JNA

    /** JNA direct mappings of the same calls the facade makes through FFM. */
    public static final class JnaCalls {
        static {
            Native.register(JnaCalls.class, NativeLibrary.getInstance(Platform.C_LIBRARY_NAME));
        }

        static native long write(int fd, long buf, long count);

        static native long syscall(long nr, long a1, long a2, long a3, long a4, long a5);
    }

    @State(Scope.Thread)
    public static class CallState {
        int efd;
        Arena arena;
        long value;
        long ioctx;
        long events;
        long zeroTs;

        @Setup(Level.Trial)
        public void setup() {
            efd = Sys.eventfd(0, Sys.EFD_NONBLOCK | Sys.EFD_CLOEXEC);
            arena = Arena.ofShared();
            MemorySegment v = arena.allocate(8, 8);
            v.set(java.lang.foreign.ValueLayout.JAVA_LONG, 0, 1);
            value = v.address();
            ioctx = Sys.ioSetup(4);
            events = arena.allocate(32 * 4, 8).address();
            zeroTs = arena.allocate(16, 8).address();
        }

        @Setup(Level.Iteration)
        public void reset() {
            Sys.eventfdRead(efd); // keep the counter far from its limit
        }

        @TearDown(Level.Trial)
        public void tearDown() {
            Sys.ioDestroy(ioctx);
            Sys.close(efd);
            arena.close();
        }
    }

    @Benchmark
    @BenchmarkMode(Mode.AverageTime)
    @OutputTimeUnit(TimeUnit.NANOSECONDS)
    public long eventfdWriteFfm(CallState s) {
        return Sys.write(s.efd, s.value, 8);
    }

    @Benchmark
    @BenchmarkMode(Mode.AverageTime)
    @OutputTimeUnit(TimeUnit.NANOSECONDS)
    public long eventfdWriteJna(CallState s) {
        return JnaCalls.write(s.efd, s.value, 8);
    }

    @Benchmark
    @BenchmarkMode(Mode.AverageTime)
    @OutputTimeUnit(TimeUnit.NANOSECONDS)
    public int ioGeteventsFfm(CallState s) {
        return Sys.ioGetevents(s.ioctx, 0, 4, s.events, s.zeroTs);
    }

    @Benchmark
    @BenchmarkMode(Mode.AverageTime)
    @OutputTimeUnit(TimeUnit.NANOSECONDS)
    public long ioGeteventsJna(CallState s) {
        return JnaCalls.syscall(Sys.SYS_IO_GETEVENTS, s.ioctx, 0, 4, s.events, s.zeroTs);
    }
}
