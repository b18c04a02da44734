package io.vblk.drivers.job;

import io.vblk.aio.AioOptions;
import io.vblk.aio.IoThread;
import io.vblk.aio.engine.AioMode;
import io.vblk.drivers.BlockDriver;
import io.vblk.drivers.TestImages;
import io.vblk.drivers.fault.FaultDriver;
import io.vblk.drivers.fault.FaultRule;
import io.vblk.drivers.file.FileDriver;
import io.vblk.drivers.node.BlockNode;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.function.BooleanSupplier;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Any thread (test code): the jobs on a main-loop IoThread, a writing parent on another IoThread.
 *
 * <p>The shared fixture of the jobs on real files: the image files (one filled with random data,
 * kept as {@link #original}), their nodes, a listener recording the events and the job's end,
 * and the check of one block against a parent's last acknowledged write.
 */
abstract class FileJobsTest extends MainLoopJobsTest {
    protected static final long SIZE = 4L << 20; // the Writer's disk size
    protected static final int BLOCK = 4096;
    protected static final Duration T = Duration.ofSeconds(30);

    @TempDir
    protected Path dir;
    protected final IoThread io = IoThread.start("io", AioOptions.DEFAULT);
    protected final CompletableFuture<Void> ready = new CompletableFuture<>();
    protected final CompletableFuture<String> ended = new CompletableFuture<>();
    protected byte[] original;
    private final long seed;

    /** @param seed the random data of the source image */
    protected FileJobsTest(long seed) {
        super(T);
        this.seed = seed;
    }

    @AfterEach
    void closeIo() {
        io.close();
    }

    protected final BlockNode node(String name, BlockDriver d) {
        return on(() -> new BlockNode(name, d, main.ctx()));
    }

    protected final BlockDriver file(String name, boolean random) throws Exception {
        String p = TestImages.create(dir, name, SIZE);
        if (random) {
            original = new byte[(int) SIZE];
            new Random(seed).nextBytes(original);
            Files.write(Path.of(p), original);
        }
        return FileDriver.open(p, AioMode.THREADS, FileDriver.Cache.WRITEBACK, false);
    }

    /** The source node, on {@code src.img} holding {@link #original}. */
    protected final BlockNode source() throws Exception {
        return node("src", file("src.img", true));
    }

    /** The source node, on {@code src.img} holding {@link #original}, with the fault {@code rule}. */
    protected final BlockNode source(FaultRule rule) throws Exception {
        return node("src", new FaultDriver(file("src.img", true), List.of(rule), 1));
    }

    /** The target node, on an empty {@code dst.img}. */
    protected final BlockNode target() throws Exception {
        return node("dst", file("dst.img", false));
    }

    /** The target node, on an empty {@code dst.img}, with the fault {@code rule}. */
    protected final BlockNode target(FaultRule rule) throws Exception {
        return node("dst", new FaultDriver(file("dst.img", false), List.of(rule), 1));
    }

    /** Records the status changes and I/O errors in {@link #events}, completes {@link #ready} and {@link #ended}. */
    protected final void listen() {
        jobs.addListener(new StatusRecorder() {
            @Override
            public void ready(Job job) {
                ready.complete(null);
            }

            @Override
            public void completed(Job job, String error) {
                ended.complete(error == null ? "completed" : "completed: " + error);
            }

            @Override
            public void cancelled(Job job) {
                ended.complete("cancelled");
            }

            @Override
            public void ioError(Job job, boolean read, OnError.Action action) {
                events.add("error " + (read ? "read " : "write ") + action.qapi());
            }
        });
    }

    /** A {@link MirrorJobTest.Writer} attached to {@code src} and writing. */
    protected final MirrorJobTest.Writer writer(BlockNode src) {
        MirrorJobTest.Writer w = new MirrorJobTest.Writer(io.ctx(), src);
        run(() -> src.attach(w));
        w.start();
        return w;
    }

    /** Lets {@code w} go on for {@code more} acknowledged writes, then stops it and detaches it from {@code node}. */
    protected final void stopAfter(MirrorJobTest.Writer w, long more, BlockNode node) {
        w.awaitAcks(w.acks() + more);
        w.stop();
        run(() -> node.detach(w));
    }

    /** Spins until {@code done}, failing with {@code what} after {@link #T}. */
    protected static void until(String what, BooleanSupplier done) {
        long deadline = System.nanoTime() + T.toNanos();
        while (!done.getAsBoolean()) {
            assertThat(System.nanoTime()).as(what).isLessThan(deadline);
        }
    }

    /** Block {@code b} of {@code img} holds the write of generation {@code gen}, or the original data if 0. */
    protected final void assertBlock(byte[] img, int b, long gen, String what) {
        if (gen == 0) {
            assertThat(ByteBuffer.wrap(img, b * BLOCK, BLOCK)).as("%s block %d: never written", what, b)
                    .isEqualTo(ByteBuffer.wrap(original, b * BLOCK, BLOCK));
        } else {
            long got = ByteBuffer.wrap(img, b * BLOCK, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
            assertThat(got).as("%s block %d: last acknowledged write", what, b).isEqualTo(gen);
        }
    }
}
