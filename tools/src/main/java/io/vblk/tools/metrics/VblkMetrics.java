package io.vblk.tools.metrics;

import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Tag;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.binder.MeterBinder;
import io.micrometer.core.instrument.binder.jvm.ClassLoaderMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmGcMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmMemoryMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmThreadMetrics;
import io.micrometer.core.instrument.binder.system.FileDescriptorMetrics;
import io.micrometer.core.instrument.binder.system.ProcessorMetrics;
import io.micrometer.core.instrument.binder.system.UptimeMetrics;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.vblk.aio.AioContext;
import io.vblk.aio.Sleeper;
import io.vblk.aio.engine.SubmissionQueue;
import io.vblk.aio.linuxaio.LinuxAio;
import io.vblk.aio.metrics.LatencyHistogram;
import io.vblk.aio.metrics.Meter;
import io.vblk.aio.uring.UringBackend;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.ChannelBase;
import io.vblk.drivers.node.BlockNode;
import io.vblk.irqfd.IrqfdNotifier;
import io.vblk.virtio.blk.BlkDevice;
import io.vblk.virtio.blk.BlockErrorAction;
import io.vblk.virtio.blk.BlkQueueStats;
import io.vblk.virtio.vhost.socket.VhostUserExport;
import io.vblk.virtio.vhost.socket.VhostUserStats;
import io.vblk.virtio.vhost.wire.VhostUserRequest;

import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.Locale;
import java.util.Set;
import java.util.List;
import java.util.Map;
import java.util.function.ToDoubleFunction;

/**
 * Any thread for binding and closing (the control plane; synchronized on this object). Scrapes
 * run on the scraping thread and read the components' getters from there: each getter returns a
 * plain {@code long}/{@code int} field written only by the component's home thread, which the JVM
 * reads whole on 64-bit platforms (HotSpot never splits an aligned 64-bit access), so a value may
 * be stale by the work of one loop iteration, never torn. Histograms use opaque accesses.
 *
 * <p>The Micrometer binding of vblk's components: given live objects (event loops, Linux AIO
 * engines, driver channels, ...), it registers one meter per {@link Meter} constant that applies,
 * reading the component's getters when scraped. The components hold plain fields on their home
 * threads and know nothing of Micrometer; nothing is looked up or allocated on their hot paths.
 *
 * <p>Latency and size distributions ({@link Meter.Kind#HISTOGRAM}) are exported by a
 * {@link HistogramCollector} per meter, registered in the same Prometheus registry.
 */
public final class VblkMetrics implements AutoCloseable {
    /** Bound on a hand-over to a component's home thread while binding. */
    static final Duration BIND_TIMEOUT = Duration.ofSeconds(10);

    private final PrometheusMeterRegistry registry;
    private final Map<Meter, HistogramCollector> histograms = new EnumMap<>(Meter.class);
    private final List<Binding> bindings = new ArrayList<>();
    private final Map<SubmissionQueue, SharedEngine> engines = new IdentityHashMap<>();
    private boolean closed;

    /** A new Prometheus registry. */
    public VblkMetrics() {
        this(new PrometheusMeterRegistry(PrometheusConfig.DEFAULT));
    }

    public VblkMetrics(PrometheusMeterRegistry registry) {
        // A name registered twice with different tag keys must fail at bind time, not vanish.
        this.registry = registry.throwExceptionOnRegistrationFailure();
    }

    public PrometheusMeterRegistry registry() {
        return registry;
    }

    // ---------------------------------------------------------------- binders

    /**
     * JVM and process meters from Micrometer's binders: memory, GC, threads, class loading, CPU,
     * open file descriptors, uptime.
     */
    public synchronized Binding bindJvm() {
        Binding b = open("jvm");
        JvmGcMetrics gc = new JvmGcMetrics();
        b.closeables.add(gc);
        Set<io.micrometer.core.instrument.Meter> before = new HashSet<>(registry.getMeters());
        for (MeterBinder mb : new MeterBinder[] {new JvmMemoryMetrics(), gc, new JvmThreadMetrics(),
                new ClassLoaderMetrics(), new ProcessorMetrics(), new FileDescriptorMetrics(), new UptimeMetrics()}) {
            mb.bindTo(registry);
        }
        // Remember what the binders registered, so close() can remove it.
        for (io.micrometer.core.instrument.Meter m : registry.getMeters()) {
            if (!before.contains(m)) {
                b.meters.add(m);
            }
        }
        return done(b);
    }

    /**
     * An event loop (IoThread or main loop): iterations, blocked and busy-poll time, poll hits and
     * window, bottom halves, timers, and the guards counted per loop: drained sections (003),
     * foreign completions handed over (002), nested waits and their timeouts (004).
     */
    public synchronized Binding bindLoop(AioContext ctx) {
        Binding b = open("loop " + ctx.name());
        String t = ctx.name();
        counter(b, Meter.LOOP_ITERATIONS, ctx, AioContext::iterations, t);
        counter(b, Meter.LOOP_BLOCKED, ctx, c -> c.blockedNanos() / 1e9, t);
        counter(b, Meter.LOOP_SPIN, ctx, c -> c.spinNanos() / 1e9, t);
        counter(b, Meter.LOOP_POLL_HITS, ctx, AioContext::pollHits, t);
        counter(b, Meter.LOOP_POLL_MISSES, ctx, AioContext::pollMisses, t);
        gauge(b, Meter.LOOP_POLL_WINDOW, ctx, c -> c.pollWindowNanos() / 1e9, t);
        counter(b, Meter.LOOP_BH_RUNS, ctx, AioContext::bhRuns, t);
        counter(b, Meter.LOOP_TIMER_RUNS, ctx, AioContext::timerRuns, t);
        counter(b, Meter.GUARD_DRAINED_SECTIONS, ctx, AioContext::drainedSections, t);
        counter(b, Meter.GUARD_DRAIN_RECHECKS, ctx, AioContext::drainRechecks, t);
        counter(b, Meter.GUARD_FOREIGN_COMPLETIONS, ctx, AioContext::foreignCompletions, t);
        counter(b, Meter.GUARD_NESTED_WAITS, ctx, AioContext::nestedWaits, t);
        counter(b, Meter.GUARD_NESTED_WAIT_TIMEOUTS, ctx, AioContext::nestedWaitTimeouts, t);
        return done(b);
    }

    /**
     * A context's Linux AIO engine: io_submit calls and batch sizes, EAGAIN, ring reads and
     * io_getevents fallbacks, completion passes and bottom-half runs, in flight, and the
     * submit-depth guard (seed 000). {@code aio} is a {@link LinuxAio} engine ({@link LinuxAio#of}).
     * Close the binding before the engine's last release.
     */
    public synchronized Binding bindLinuxAio(SubmissionQueue aio) {
        LinuxAio backend = LinuxAio.backendOf(aio);
        if (backend == null) {
            throw new IllegalArgumentException("not a Linux AIO engine: " + aio);
        }
        String t = aio.context().name();
        Binding thin = open("linux-aio " + t);
        SharedEngine shared = engines.get(aio);
        if (shared == null) {
            shared = new SharedEngine(EngineMeters.linuxAio(this, aio, backend, t));
            engines.put(aio, shared);
        }
        shared.refs++;
        thin.closeables.add(() -> releaseEngine(aio));
        return done(thin);
    }

    /**
     * A context's io_uring engine ({@link UringBackend#of}): io_uring_enter calls, batch sizes,
     * requests taken and completed, submits that took nothing, in flight, resubmissions, and its
     * submit-depth guard (seed 000). Bound once per engine like Linux AIO's; close the binding
     * before the engine's last release.
     */
    public synchronized Binding bindIoUring(SubmissionQueue engine) {
        UringBackend backend = UringBackend.backendOf(engine);
        if (backend == null) {
            throw new IllegalArgumentException("not an io_uring engine: " + engine);
        }
        String t = engine.context().name();
        Binding thin = open("io_uring " + t);
        SharedEngine shared = engines.get(engine);
        if (shared == null) {
            shared = new SharedEngine(EngineMeters.ioUring(this, engine, backend, t));
            engines.put(engine, shared);
        }
        shared.refs++;
        thin.closeables.add(() -> releaseEngine(engine));
        return done(thin);
    }

    /** An engine's meters, bound once however many channels and callers name it. */
    private static final class SharedEngine {
        final Binding meters;
        int refs;

        SharedEngine(Binding meters) {
            this.meters = meters;
        }
    }

    private synchronized void releaseEngine(SubmissionQueue aio) {
        SharedEngine s = engines.get(aio);
        if (s != null && --s.refs == 0) {
            engines.remove(aio);
            unbind(s.meters);
        }
    }

    /**
     * The Linux AIO engine of {@code ctx}, if it has one (found on its home thread; none is
     * created), else null. Call from any thread but a context's home thread, after the drivers
     * opened their channels.
     */
    public Binding bindLinuxAioOf(AioContext ctx) {
        SubmissionQueue aio = AioContext.await(ctx.callOn(() -> LinuxAio.peek(ctx)), BIND_TIMEOUT);
        return aio == null ? null : bindLinuxAio(aio);
    }

    /** A sleeper (periodic task with early wake) on {@code ctx}: the wake-order guard (seed 001). */
    public synchronized Binding bindSleeper(Sleeper sleeper, String name, AioContext ctx) {
        Binding b = open("sleeper " + name);
        counter(b, Meter.GUARD_WAKES_BEFORE_SLEEP, sleeper, Sleeper::wakesBeforeSleep, ctx.name(), name);
        return done(b);
    }

    /**
     * A driver channel: requests in flight and completed; for the synchronous null driver its
     * submit-depth guard (seed 000); for a channel on Linux AIO (file, aio=native) its context's
     * engine (bound once per engine, however many channels share it). {@code driver} is the
     * driver's kind. Devices bind the channels they open themselves ({@link #bindDevice}).
     */
    public synchronized Binding bindChannel(BlockChannel channel, String export, String driver) {
        String t = channel.context().name();
        Binding b = open("channel " + export + " " + t);
        gauge(b, Meter.CHANNEL_IN_FLIGHT, channel, BlockChannel::inFlight, export, t, driver);
        if (channel instanceof ChannelBase cb) {
            counter(b, Meter.CHANNEL_COMPLETED, cb, ChannelBase::completedCount, export, t, driver);
        }
        bindEngineOf(b, channel);
        return done(b);
    }

    /**
     * Into {@code b}: the engine {@code channel} submits to — for the synchronous null device its
     * submit-depth guard (seed 000), for Linux AIO and io_uring the context's shared engine.
     */
    void bindEngineOf(Binding b, BlockChannel channel) {
        String t = channel.context().name();
        SubmissionQueue engine = channel instanceof ChannelBase cb && cb.engine() instanceof SubmissionQueue q ? q : null;
        if (engine != null && engine.kind().equals("null-sync")) {
            // The synchronous null device's queue is the channel's own: its guard is bound here.
            counter(b, Meter.GUARD_SUBMIT_CAP_HITS, engine, SubmissionQueue::submitCapHits, t, "null-sync");
            gauge(b, Meter.GUARD_SUBMIT_MAX_DEPTH, engine, SubmissionQueue::maxSubmitDepth, t, "null-sync");
        }
        if (LinuxAio.backendOf(engine) != null || UringBackend.backendOf(engine) != null) {
            Binding shared = LinuxAio.backendOf(engine) != null ? bindLinuxAio(engine) : bindIoUring(engine);
            bindings.remove(shared);
            b.closeables.add(shared::close);
        }
    }

    /**
     * The engines of {@code node}'s channels, bound when each channel opens (an engine exists only
     * from a channel's first open) and unbound before it closes ({@link NodeEngines}).
     */
    public Binding bindEnginesOf(BlockNode node, String export) {
        return NodeEngines.bind(this, node, export);
    }

    /**
     * A virtio-blk device served as export {@code export}: per queue (tagged with its index and
     * IoThread) requests, bytes and errors, latency per operation, in flight, depth at pop, merges,
     * driver submits, kicks and passes, and the queue's guest notifier; per device NEEDS_RESET.
     */
    public synchronized Binding bindDevice(String export, BlkDevice dev) {
        Binding b = open("device " + export);
        for (int i = 0; i < dev.numQueues(); i++) {
            String q = Integer.toString(i);
            String t = dev.queueContext(i).name();
            BlkQueueStats st = dev.queueStats(i);
            for (int op = 0; op < BlkQueueStats.OPS.length; op++) {
                int o = op;
                String name = BlkQueueStats.OPS[op];
                counter(b, Meter.REQUESTS, st, s -> s.requests(o), export, q, t, name);
                histogram(b, Meter.REQUEST_LATENCY, st.latency(op), export, q, t, name);
            }
            counter(b, Meter.REQUEST_BYTES, st, BlkQueueStats::readBytes, export, q, t, "read");
            counter(b, Meter.REQUEST_BYTES, st, BlkQueueStats::writtenBytes, export, q, t, "write");
            counter(b, Meter.REQUEST_ERRORS, st, BlkQueueStats::ioErrorsRequest, export, q, t, "ioerr", "request");
            counter(b, Meter.REQUEST_ERRORS, st, BlkQueueStats::ioErrorsDriver, export, q, t, "ioerr", "driver");
            counter(b, Meter.REQUEST_ERRORS, st, BlkQueueStats::unsuppType, export, q, t, "unsupp", "type");
            counter(b, Meter.REQUEST_ERRORS, st, BlkQueueStats::unsuppRequest, export, q, t, "unsupp", "request");
            counter(b, Meter.REQUEST_ERRORS, st, BlkQueueStats::unsuppDriver, export, q, t, "unsupp", "driver");
            gauge(b, Meter.QUEUE_IN_FLIGHT, st, BlkQueueStats::inFlight, export, q, t);
            histogram(b, Meter.QUEUE_DEPTH_AT_POP, st.depthAtPop(), export, q, t);
            counter(b, Meter.REQUESTS_MERGED, st, BlkQueueStats::merged, export, q, t);
            counter(b, Meter.DRIVER_SUBMITS, st, BlkQueueStats::driverSubmits, export, q, t);
            counter(b, Meter.QUEUE_KICKS, st, BlkQueueStats::kicks, export, q, t);
            counter(b, Meter.QUEUE_PASSES, st, BlkQueueStats::passes, export, q, t);
            counter(b, Meter.GUARD_DRAINED_REQUESTS_STARTED, st, BlkQueueStats::startedDrained, export, q, t);
            IrqfdNotifier n = dev.notifier(i);
            counter(b, Meter.NOTIFY_REQUESTED, n, IrqfdNotifier::requested, export, q, t);
            counter(b, Meter.NOTIFY_COALESCED, n, IrqfdNotifier::coalesced, export, q, t);
            counter(b, Meter.NOTIFY_SUPPRESSED, n, IrqfdNotifier::suppressed, export, q, t);
            counter(b, Meter.NOTIFY_EVENTFD_WRITES, n, IrqfdNotifier::writes, export, q, t);
            counter(b, Meter.NOTIFY_WRITE_ERRORS, n, IrqfdNotifier::writeErrors, export, q, t);
            counter(b, Meter.NOTIFY_NO_FD, n, IrqfdNotifier::skippedNoFd, export, q, t);
        }
        gauge(b, Meter.DEVICE_NEEDS_RESET, dev, d -> d.needsReset() ? 1 : 0, export);
        for (BlockErrorAction a : BlockErrorAction.values()) {
            counter(b, Meter.DEVICE_IO_ERRORS, dev, d -> d.ioErrorCount(a), export, a.spelling());
        }
        gauge(b, Meter.DEVICE_IO_STOPPED, dev, d -> d.ioErrorStopped() ? 1 : 0, export);
        // The driver channel of each context: opened on the first start, so read through the
        // device each time (0 while none is open).
        Set<AioContext> ctxs = new java.util.LinkedHashSet<>();
        for (int i = 0; i < dev.numQueues(); i++) {
            ctxs.add(dev.queueContext(i));
        }
        String kind = dev.driver().kind();
        for (AioContext c : ctxs) {
            gauge(b, Meter.CHANNEL_IN_FLIGHT, dev, d -> {
                BlockChannel ch = d.driverChannel(c);
                return ch == null ? 0 : ch.inFlight();
            }, export, c.name(), kind);
            counter(b, Meter.CHANNEL_COMPLETED, dev, d -> {
                BlockChannel ch = d.driverChannel(c);
                return ch instanceof ChannelBase cb ? cb.completedCount() : 0;
            }, export, c.name(), kind);
        }
        // Its engines exist only once its queues open their channels: bound then (NodeEngines).
        Binding engines = bindEnginesOf(dev.node(), export);
        bindings.remove(engines);
        b.closeables.add(engines::close);
        return done(b);
    }

    /**
     * A vhost-user export: connections open and accepted, messages by type (every request type
     * the protocol defines), protocol errors. Bind its device with {@link #bindDevice} too.
     */
    public synchronized Binding bindVhostExport(VhostUserExport exp) {
        String e = exp.id();
        Binding b = open("vhost-user " + e);
        gauge(b, Meter.VHOST_CONNECTIONS, exp, VhostUserExport::connectionsOpen, e);
        counter(b, Meter.VHOST_CONNECTIONS_ACCEPTED, exp, VhostUserExport::connectionsAccepted, e);
        VhostUserStats st = exp.stats();
        for (VhostUserRequest r : VhostUserRequest.values()) {
            counter(b, Meter.VHOST_MESSAGES, st, s -> s.messages(r), e, r.name().toLowerCase(Locale.ROOT));
        }
        counter(b, Meter.VHOST_PROTOCOL_ERRORS, st, VhostUserStats::protocolErrors, e);
        return done(b);
    }

    /**
     * Everything a daemon serves: the main loop, each export's vhost-user counters and device, the
     * loop of every IoThread a queue lives on and that IoThread's Linux AIO engine if it has one.
     * For {@code vblk serve}: call once the exports listen. Any thread but a context's home thread.
     */
    public Binding bindServe(AioContext mainLoop, List<VhostUserExport> exports) {
        Binding all = open("serve");
        Set<AioContext> loops = new java.util.LinkedHashSet<>();
        loops.add(mainLoop);
        for (VhostUserExport e : exports) {
            child(all, bindVhostExport(e));
            if (e.device() instanceof BlkDevice d) {
                child(all, bindDevice(e.id(), d));
                for (int q = 0; q < d.numQueues(); q++) {
                    loops.add(d.queueContext(q));
                }
            }
        }
        bindLoopsAndEngines(all, loops);
        return done(all);
    }

    /**
     * A device run in this process (the bench target): the device under its own name as the
     * export, and {@code loops} (its control loop and IoThreads) with their Linux AIO engines.
     * Any thread but a context's home thread.
     */
    public Binding bindInProcess(BlkDevice dev, List<AioContext> loops) {
        Binding all = open("in-process " + dev.name());
        child(all, bindDevice(dev.name(), dev));
        bindLoopsAndEngines(all, new java.util.LinkedHashSet<>(loops));
        return done(all);
    }

    private void bindLoopsAndEngines(Binding all, Set<AioContext> loops) {
        for (AioContext c : loops) {
            child(all, bindLoop(c));
            Binding engine = bindLinuxAioOf(c);
            if (engine != null) {
                child(all, engine);
            }
        }
    }

    /** Makes {@code b} part of {@code parent}: closed with it, not listed on its own. */
    private synchronized void child(Binding parent, Binding b) {
        bindings.remove(b);
        parent.closeables.add(b::close);
    }

    // ---------------------------------------------------------------- registration helpers

    synchronized Binding open(String what) {
        if (closed) {
            throw new IllegalStateException("metrics closed");
        }
        return new Binding(this, what);
    }

    synchronized Binding done(Binding b) {
        bindings.add(b);
        return b;
    }

    /** Micrometer tags for {@code m} from values given in its tag-key order. */
    static Tags tags(Meter m, String... values) {
        List<String> keys = m.tagKeys();
        if (values.length != keys.size()) {
            throw new IllegalArgumentException(m + " takes tags " + keys + ", got " + values.length + " values");
        }
        List<Tag> t = new ArrayList<>(keys.size());
        for (int i = 0; i < values.length; i++) {
            t.add(Tag.of(keys.get(i), values[i]));
        }
        return Tags.of(t);
    }

    <T> void counter(Binding b, Meter m, T obj, ToDoubleFunction<T> fn, String... tagValues) {
        check(m, Meter.Kind.COUNTER);
        b.meters.add(FunctionCounter.builder(m.meterName(), obj, fn)
                .description(m.description())
                .baseUnit(m.baseUnit())
                .tags(tags(m, tagValues))
                .register(registry));
    }

    <T> void gauge(Binding b, Meter m, T obj, ToDoubleFunction<T> fn, String... tagValues) {
        check(m, Meter.Kind.GAUGE);
        b.meters.add(Gauge.builder(m.meterName(), obj, fn)
                .description(m.description())
                .baseUnit(m.baseUnit())
                .tags(tags(m, tagValues))
                .strongReference(true)
                .register(registry));
    }

    void histogram(Binding b, Meter m, LatencyHistogram h, String... tagValues) {
        check(m, Meter.Kind.HISTOGRAM);
        if (tagValues.length != m.tagKeys().size()) {
            throw new IllegalArgumentException(m + " takes tags " + m.tagKeys() + ", got " + tagValues.length + " values");
        }
        HistogramCollector c = histograms.get(m);
        if (c == null) {
            c = new HistogramCollector(m);
            registry.getPrometheusRegistry().register(c);
            histograms.put(m, c);
        }
        HistogramCollector.Source s = new HistogramCollector.Source(List.of(tagValues), h);
        c.add(s);
        b.histograms.add(new Binding.HistogramRef(c, s));
    }

    private static void check(Meter m, Meter.Kind kind) {
        if (m.kind() != kind) {
            throw new IllegalArgumentException(m + " is a " + m.kind() + ", not a " + kind);
        }
    }

    /** Removes what {@code b} registered. Called by {@link Binding#close()} under this lock. */
    synchronized void unbind(Binding b) {
        for (io.micrometer.core.instrument.Meter m : b.meters) {
            registry.remove(m);
        }
        for (Binding.HistogramRef h : b.histograms) {
            h.collector().remove(h.source());
        }
        for (AutoCloseable c : b.closeables) {
            try {
                c.close();
            } catch (Exception e) {
                throw new IllegalStateException("closing " + c + " of " + b.what() + " failed", e);
            }
        }
        bindings.remove(b);
    }

    /** Open bindings. */
    public synchronized List<Binding> bindings() {
        return List.copyOf(bindings);
    }

    // ---------------------------------------------------------------- reading

    /**
     * The Prometheus exposition of every bound meter: OpenMetrics 1.0 when {@code accept} asks for
     * {@code application/openmetrics-text}, else the text format 0.0.4. Any thread.
     */
    public Scrape scrape(String accept) {
        String type = accept != null && accept.contains("application/openmetrics-text")
                ? Scrape.OPENMETRICS : Scrape.TEXT_004;
        return new Scrape(type, registry.scrape(type));
    }

    /** A scrape body and its Content-Type. */
    public record Scrape(String contentType, String body) {
        public static final String TEXT_004 = "text/plain; version=0.0.4; charset=utf-8";
        public static final String OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    }

    /**
     * Every bound meter's current value, keyed like a Prometheus series:
     * {@code vblk_requests_total{export=disk0,iothread=io0,op=read,queue=0}}. Histograms give
     * {@code _count}, {@code _sum} and {@code {..,quantile=0.5|0.99|0.999}} (seconds for
     * latencies). With {@code includeJvm} false only vblk's own meters. For {@code vblk bench
     * --json}. Any thread.
     */
    public Map<String, Number> snapshot(boolean includeJvm) {
        List<HistogramCollector> cs;
        synchronized (this) {
            cs = List.copyOf(histograms.values());
        }
        return MetricsSnapshot.of(registry, cs, includeJvm);
    }

    /**
     * The current value of one bound meter, by its tag values in the catalogue's key order: the
     * count of a counter, the value of a gauge, the number of records of a histogram; NaN when no
     * such meter is bound. Any thread.
     */
    public double value(Meter m, String... tagValues) {
        Tags tags = tags(m, tagValues);
        if (m.kind() == Meter.Kind.HISTOGRAM) {
            LatencyHistogram.Snapshot s = histogramSnapshot(m, tagValues);
            return s == null ? Double.NaN : s.count();
        }
        io.micrometer.core.instrument.search.Search q = registry.find(m.meterName()).tags(tags);
        if (m.kind() == Meter.Kind.COUNTER) {
            FunctionCounter c = q.functionCounter();
            return c == null ? Double.NaN : c.count();
        }
        Gauge g = q.gauge();
        return g == null ? Double.NaN : g.value();
    }

    /** A snapshot of one bound histogram, or null when none is bound with these tag values. Any thread. */
    public LatencyHistogram.Snapshot histogramSnapshot(Meter m, String... tagValues) {
        check(m, Meter.Kind.HISTOGRAM);
        HistogramCollector c;
        synchronized (this) {
            c = histograms.get(m);
        }
        if (c == null) {
            return null;
        }
        List<String> want = List.of(tagValues);
        for (HistogramCollector.Source s : c.sources()) {
            if (s.labelValues().equals(want)) {
                return s.histogram().snapshot();
            }
        }
        return null;
    }

    /** Removes every binding's meters and the histogram collectors. Any thread. */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        for (Binding b : new ArrayList<>(bindings)) {
            b.close();
        }
        for (HistogramCollector c : histograms.values()) {
            registry.getPrometheusRegistry().unregister(c);
        }
        histograms.clear();
        closed = true;
    }
}
