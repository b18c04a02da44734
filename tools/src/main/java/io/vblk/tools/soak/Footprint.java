package io.vblk.tools.soak;

import io.vblk.tools.metrics.ProcessSample;

/**
 * Any thread, under the owning SoakRun's lock (its readings are taken in one synchronized method).
 *
 * <p>First, last and largest reading of each footprint figure over a soak, and whether it stayed
 * flat. The warm-up reference is the first reading taken after the first client cycle ended (the
 * first connection starts the server's worker threads and JIT-compiles the request path); the
 * last reading of RSS must be within {@link #RSS_SLACK} of it plus {@link #RSS_SLACK_KB}, and fds
 * and threads back at its figures (a connection's fds may be open at the moment of a reading,
 * hence {@link #FD_SLACK}).
 */
final class Footprint {
    /** RSS may grow by this fraction past the warm-up reading (the JIT and the heap settle). */
    static final double RSS_SLACK = 0.25;
    static final long RSS_SLACK_KB = 16 * 1024;
    /** A vhost-user connection holds its socket, a memory fd and a kick and call fd per queue. */
    static final int FD_SLACK = 12;
    static final int THREAD_SLACK = 2;

    private ProcessSample first;
    private ProcessSample warm;
    private ProcessSample last;
    private long maxRss;
    private int maxFds;
    private int maxThreads;
    private int samples;

    /** Adds a reading; the first one {@code warmedUp} is the warm-up reference. */
    void add(ProcessSample s, boolean warmedUp) {
        if (first == null) {
            first = s;
        }
        if (warm == null && warmedUp) {
            warm = s;
        }
        samples++;
        last = s;
        maxRss = Math.max(maxRss, s.rssKb());
        maxFds = Math.max(maxFds, s.fds());
        maxThreads = Math.max(maxThreads, s.threads());
    }

    int samples() {
        return samples;
    }

    /** Whether RSS, fds and threads stayed flat (see the class comment); false without a warm-up reading. */
    boolean flat() {
        if (warm == null) {
            return false;
        }
        return last.rssKb() <= warm.rssKb() * (1 + RSS_SLACK) + RSS_SLACK_KB
                && last.fds() <= warm.fds() + FD_SLACK
                && last.threads() <= warm.threads() + THREAD_SLACK;
    }

    /** "rss_kb first=.. warm=.. last=.. max=.. | fds ... | threads ... | flat=yes". */
    String summary() {
        if (first == null) {
            return "no readings";
        }
        if (warm == null) {
            return "no reading after the first cycle ended | flat=NO";
        }
        ProcessSample w = warm;
        return "rss_kb first=" + first.rssKb() + " warm=" + w.rssKb() + " last=" + last.rssKb() + " max=" + maxRss
                + " | fds first=" + first.fds() + " warm=" + w.fds() + " last=" + last.fds() + " max=" + maxFds
                + " | threads first=" + first.threads() + " warm=" + w.threads() + " last=" + last.threads()
                + " max=" + maxThreads + " | flat=" + (flat() ? "yes" : "NO");
    }
}
