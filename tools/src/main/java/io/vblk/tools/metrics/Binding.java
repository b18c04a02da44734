package io.vblk.tools.metrics;

import java.util.ArrayList;
import java.util.List;

/**
 * Any thread; made and closed by the control plane.
 *
 * <p>The meters one live object was bound to. Closing it removes them from the registry (do that
 * before the object is released, so no scrape reads a released component).
 */
public final class Binding implements AutoCloseable {
    private final VblkMetrics owner;
    private final String what;
    final List<io.micrometer.core.instrument.Meter> meters = new ArrayList<>();
    final List<HistogramRef> histograms = new ArrayList<>();
    final List<AutoCloseable> closeables = new ArrayList<>();
    private boolean closed;

    /** A histogram source and the collector it was added to. */
    record HistogramRef(HistogramCollector collector, HistogramCollector.Source source) {
    }

    Binding(VblkMetrics owner, String what) {
        this.owner = owner;
        this.what = what;
    }

    /** What was bound, e.g. "loop io0". */
    public String what() {
        return what;
    }

    /** Micrometer meters registered by this binding (histograms are not Micrometer meters). */
    public List<io.micrometer.core.instrument.Meter> meters() {
        return List.copyOf(meters);
    }

    /** Number of histogram series this binding exports. */
    public int histogramCount() {
        return histograms.size();
    }

    public boolean isClosed() {
        return closed;
    }

    @Override
    public void close() {
        synchronized (owner) {
            if (closed) {
                return;
            }
            closed = true;
            owner.unbind(this);
        }
    }

    @Override
    public String toString() {
        return "Binding[" + what + ", " + meters.size() + " meters, " + histograms.size() + " histograms]";
    }
}
