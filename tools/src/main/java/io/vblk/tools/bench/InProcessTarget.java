package io.vblk.tools.bench;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioOptions;
import io.vblk.aio.IoThread;
import io.vblk.aio.engine.AioMode;
import io.vblk.aio.engine.SubmissionQueue;
import io.vblk.aio.linuxaio.LinuxAio;
import io.vblk.drivers.spec.DriverSpec;
import io.vblk.drivers.file.FileDriver;
import io.vblk.virtio.blk.BlkDeviceConfig;
import io.vblk.guest.GuestTransport;
import io.vblk.tools.metrics.Binding;
import io.vblk.tools.metrics.VblkMetrics;
import io.vblk.guest.InProcessBlk;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

/**
 * Any thread that is no context's home thread (the bench's main thread).
 *
 * <p>The device in this process: the driver from {@code --driver}, a virtio-blk device with
 * {@code --queues} queues mapped round-robin to {@code --iothreads} IoThreads, and the in-process
 * transport to it.
 */
final class InProcessTarget implements BenchTarget {
    private final InProcessBlk dev;
    private final boolean nativeAio;
    /** The same meters `vblk serve` exports, bound to this run's device, loops and engines. */
    private final VblkMetrics metrics = new VblkMetrics();
    private final Binding binding;

    private InProcessTarget(InProcessBlk dev, boolean nativeAio) {
        this.dev = dev;
        this.nativeAio = nativeAio;
        this.binding = metrics.bindInProcess(dev.device(), dev.loops());
    }

    /**
     * Opens the driver and starts the device; a bad spec fails with the parser's message, and
     * verify mode on the null driver (which keeps no data) is refused.
     */
    static InProcessTarget open(String driverSpec, int queues, int iothreads, int queueSize, AioOptions io,
                                boolean verify, int submitBatch) {
        DriverSpec spec = DriverSpec.parse(driverSpec);
        if (verify && spec instanceof DriverSpec.Null) {
            throw new IllegalArgumentException("verify mode needs a driver that keeps what is written (file:PATH);"
                    + " the null driver forgets writes");
        }
        boolean nativeAio = spec instanceof DriverSpec.File f && f.aio() == AioMode.NATIVE;
        BlkDeviceConfig cfg = new BlkDeviceConfig().numQueues(queues).queueSize(queueSize).submitBatch(submitBatch);
        return new InProcessTarget(InProcessBlk.start(spec.open(), cfg, iothreads, io), nativeAio);
    }

    @Override
    public String describe() {
        return "in-process";
    }

    @Override
    public GuestTransport transport() {
        return dev.transport();
    }

    @Override
    public List<Thread> ioThreads() {
        List<Thread> l = new ArrayList<>();
        for (IoThread t : dev.ioThreads()) {
            l.add(t.thread());
        }
        return l;
    }

    @Override
    public Thread controlThread() {
        return dev.control().thread();
    }

    /** Sum of the io_submit calls of each IoThread's Linux AIO engine; -1 without aio=native. */
    @Override
    public long ioSubmitCalls() {
        if (!nativeAio) {
            return -1;
        }
        long n = 0;
        for (IoThread t : dev.ioThreads()) {
            AioContext c = t.ctx();
            // peek: reading a counter must not take a reference on the engine.
            n += AioContext.await(c.callOn(() -> {
                SubmissionQueue e = LinuxAio.peek(c);
                return e == null ? 0L : e.submitCalls();
            }), Duration.ofSeconds(10));
        }
        return n;
    }

    @Override
    public java.util.Map<String, Number> meterSnapshot() {
        return metrics.snapshot(false);
    }

    @Override
    public void close() {
        binding.close();
        metrics.close();
        dev.close();
    }
}
