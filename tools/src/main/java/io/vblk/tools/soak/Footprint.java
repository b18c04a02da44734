package io.vblk.tools.soak;

/**
 * Home thread: the soak's sampling thread (the summary is read after it stopped).
 *
 * <p>First, last and largest reading of each footprint figure over a soak, and whether it stayed
 * flat: after the warm-up the last reading of RSS is within {@link #RSS_SLACK} of the first
 * after warm-up plus {@link #RSS_SLACK_KB}, and fds and threads are back at the warm-up figure
 * (a connection's fds may be open at the moment of a reading, hence {@link #FD_SLACK}).
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

    /** Adds a reading; the second one is the warm-up reference. */
    void add(ProcessSample s) {
        if (first == null) {
            first = s;
        }
        if (samples == 1) {
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

    /** Whether RSS, fds and threads stayed flat (see the class comment); true with fewer than two readings. */
    boolean flat() {
        if (warm == null) {
            return true;
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
        ProcessSample w = warm == null ? first : warm;
        return "rss_kb first=" + first.rssKb() + " warm=" + w.rssKb() + " last=" + last.rssKb() + " max=" + maxRss
                + " | fds first=" + first.fds() + " warm=" + w.fds() + " last=" + last.fds() + " max=" + maxFds
                + " | threads first=" + first.threads() + " warm=" + w.threads() + " last=" + last.threads()
                + " max=" + maxThreads + " | flat=" + (flat() ? "yes" : "NO");
    }
}
