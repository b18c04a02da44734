package io.vblk.tools.metrics;

import io.prometheus.metrics.model.registry.Collector;
import io.prometheus.metrics.model.snapshots.ClassicHistogramBuckets;
import io.prometheus.metrics.model.snapshots.HistogramSnapshot;
import io.prometheus.metrics.model.snapshots.Labels;
import io.prometheus.metrics.model.snapshots.MetricSnapshot;
import io.prometheus.metrics.model.snapshots.Unit;
import io.vblk.aio.metrics.LatencyHistogram;
import io.vblk.aio.metrics.Meter;

import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * Any thread: sources are added and removed by binders, read by the scrape thread.
 *
 * <p>Exports every {@link LatencyHistogram} bound to one histogram {@link Meter} as one Prometheus
 * classic histogram family ({@code _bucket{le=...}}, {@code _count}, {@code _sum}), read from the
 * histograms' snapshots at scrape time.
 *
 * <p>Why not a Micrometer Timer or DistributionSummary: those record the values themselves, while
 * here the device records on its home thread into buckets it already holds, and Micrometer cannot
 * read external buckets. A gauge per quantile would give p50/p99/p99.9 since start only, and
 * quantiles of different queues cannot be added; real buckets let Prometheus compute any quantile
 * over any window and across queues ({@code histogram_quantile(0.99, sum by (le)
 * (rate(..._bucket[1m])))}). So this collector sits beside Micrometer's meters in the same
 * Prometheus registry and is scraped with them. The exported bounds are a subset of the
 * histogram's bucket bounds, so every {@code le} count is exact.
 */
final class HistogramCollector implements Collector {
    /** Latency bounds: 1.024 us to 17.2 s, two per power of two (ns). */
    static final long[] LATENCY_BOUNDS_NS = latencyBounds();
    /** Count bounds (batch sizes, queue depths): 1, 2, 3, 4, 6, 8, 12 ... 1024. */
    static final long[] COUNT_BOUNDS = countBounds();

    /** One bound histogram with its label values (in the meter's tag-key order). */
    record Source(List<String> labelValues, LatencyHistogram histogram) {
    }

    private final Meter meter;
    private final String[] labelNames;
    private final long[] bounds;
    private final double[] exportedBounds;
    private final double scale;
    private final List<Source> sources = new CopyOnWriteArrayList<>();

    HistogramCollector(Meter meter) {
        if (meter.kind() != Meter.Kind.HISTOGRAM) {
            throw new IllegalArgumentException(meter + " is not a histogram");
        }
        this.meter = meter;
        this.labelNames = meter.tagKeys().toArray(new String[0]);
        boolean seconds = Meter.Unit.SECONDS.equals(meter.baseUnit());
        this.bounds = LatencyHistogram.requireBounds(seconds ? LATENCY_BOUNDS_NS : COUNT_BOUNDS);
        this.scale = seconds ? 1e-9 : 1.0;
        this.exportedBounds = new double[bounds.length + 1];
        for (int i = 0; i < bounds.length; i++) {
            exportedBounds[i] = bounds[i] * scale;
        }
        exportedBounds[bounds.length] = Double.POSITIVE_INFINITY;
    }

    Meter meter() {
        return meter;
    }

    void add(Source s) {
        sources.add(s);
    }

    void remove(Source s) {
        sources.remove(s);
    }

    List<Source> sources() {
        return sources;
    }

    boolean isEmpty() {
        return sources.isEmpty();
    }

    @Override
    public String getPrometheusName() {
        return meter.prometheusName();
    }

    @Override
    public MetricSnapshot collect() {
        HistogramSnapshot.Builder b = HistogramSnapshot.builder().name(meter.prometheusName()).help(meter.description());
        if (meter.baseUnit() != null) {
            b.unit(new Unit(meter.baseUnit())); // the model checks that the name ends with it
        }
        for (Source s : sources) {
            LatencyHistogram.Snapshot snap = s.histogram().snapshot();
            if (snap.count() == 0) {
                continue; // e.g. operations a guest never sends: no 50 empty buckets each
            }
            b.dataPoint(HistogramSnapshot.HistogramDataPointSnapshot.builder()
                    .classicHistogramBuckets(ClassicHistogramBuckets.of(exportedBounds, snap.countsUpTo(bounds)))
                    .sum(snap.sum() * scale)
                    .labels(Labels.of(labelNames, s.labelValues().toArray(new String[0])))
                    .build());
        }
        return b.build();
    }

    private static long[] latencyBounds() {
        long[] b = new long[49];
        int n = 0;
        for (int k = 10; k <= 34; k++) {
            b[n++] = 1L << k;
            if (k < 34) {
                b[n++] = 3L << (k - 1);
            }
        }
        return b;
    }

    private static long[] countBounds() {
        long[] b = new long[20];
        int n = 0;
        b[n++] = 1;
        for (int k = 1; k <= 10; k++) {
            b[n++] = 1L << k;
            if (k < 10) {
                b[n++] = 3L << (k - 1);
            }
        }
        return java.util.Arrays.copyOf(b, n);
    }
}
