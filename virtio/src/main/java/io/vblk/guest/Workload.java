package io.vblk.guest;

import java.util.Locale;

/**
 * Any thread: immutable.
 *
 * <p>What the emulated guest does on each of its queues: a closed loop keeping {@code queueDepth}
 * requests in flight per queue until the duration or request count is reached, fio-style.
 *
 * @param pattern       access pattern (fio's {@code --rw})
 * @param readPercent   share of reads in the mixed patterns, 0..100 (fio's {@code rwmixread})
 * @param blockSize     bytes per request, a multiple of 512
 * @param queueDepth    requests in flight per queue
 * @param durationNanos run time (0: run until {@code requests} are done)
 * @param requests      total requests over all queues (0: run for {@code durationNanos})
 * @param verify        write self-checking blocks, check every read, and read every written
 *                      block back at the end
 * @param seed          seed of the offset and mix choices (each queue derives its own)
 * @param regionOffset  first byte of the device the workload touches (multiple of blockSize)
 * @param regionBytes   bytes of the device it touches (0: up to the end); split evenly
 *                      between queues so that each queue owns its own blocks
 * @param segments      data descriptors per request (1 = one buffer)
 * @param stallNanos    a queue with requests in flight and no completion for this long fails
 */
public record Workload(Pattern pattern, int readPercent, int blockSize, int queueDepth, long durationNanos,
                       long requests, boolean verify, long seed, long regionOffset, long regionBytes, int segments,
                       long stallNanos) {

    /** fio's names. */
    public enum Pattern {
        READ(false, true, false), WRITE(false, false, true), RANDREAD(true, true, false),
        RANDWRITE(true, false, true), RW(false, true, true), RANDRW(true, true, true);

        final boolean random;
        final boolean reads;
        final boolean writes;

        Pattern(boolean random, boolean reads, boolean writes) {
            this.random = random;
            this.reads = reads;
            this.writes = writes;
        }

        public boolean random() {
            return random;
        }

        public boolean reads() {
            return reads;
        }

        public boolean writes() {
            return writes;
        }

        public String cliName() {
            return name().toLowerCase(Locale.ROOT);
        }

        /** Parses a fio name ({@code randread}, ... ; {@code readwrite} = {@code rw}). */
        public static Pattern parse(String s) {
            String n = s.trim().toLowerCase(Locale.ROOT);
            if (n.equals("readwrite")) {
                return RW;
            }
            for (Pattern p : values()) {
                if (p.cliName().equals(n)) {
                    return p;
                }
            }
            throw new IllegalArgumentException("'" + s + "' is not an access pattern; use one of "
                    + "read, write, randread, randwrite, rw, randrw");
        }
    }

    public Workload {
        if (pattern == null) {
            throw new IllegalArgumentException("pattern is required");
        }
        if (readPercent < 0 || readPercent > 100) {
            throw new IllegalArgumentException("read percentage must be 0..100, got " + readPercent);
        }
        if (blockSize < BlkWireLayout.SECTOR_BYTES || blockSize % BlkWireLayout.SECTOR_BYTES != 0) {
            throw new IllegalArgumentException("block size must be a positive multiple of 512, got " + blockSize);
        }
        if (queueDepth < 1) {
            throw new IllegalArgumentException("queue depth must be >= 1, got " + queueDepth);
        }
        if (durationNanos < 0 || requests < 0 || (durationNanos == 0 && requests == 0)) {
            throw new IllegalArgumentException("give a positive duration or request count");
        }
        if (regionOffset < 0 || regionOffset % blockSize != 0 || regionBytes < 0) {
            throw new IllegalArgumentException("region offset must be a multiple of the block size, got "
                    + regionOffset);
        }
        if (segments < 1 || segments > blockSize / BlkWireLayout.SECTOR_BYTES && segments > 1) {
            throw new IllegalArgumentException("segments must be 1.." + blockSize / BlkWireLayout.SECTOR_BYTES
                    + " for " + blockSize + "-byte blocks, got " + segments);
        }
        if (stallNanos <= 0) {
            throw new IllegalArgumentException("stall bound must be positive");
        }
    }

    /** Random 4 KiB reads at queue depth 32 for 1000 requests, seed 1, no verify. */
    public static Workload of(Pattern p) {
        return new Workload(p, 50, 4096, 32, 0, 1000, false, 1, 0, 0, 1, 10_000_000_000L);
    }

    public Workload withReadPercent(int pct) {
        return new Workload(pattern, pct, blockSize, queueDepth, durationNanos, requests, verify, seed, regionOffset,
                regionBytes, segments, stallNanos);
    }

    public Workload withBlockSize(int bs) {
        return new Workload(pattern, readPercent, bs, queueDepth, durationNanos, requests, verify, seed, regionOffset,
                regionBytes, segments, stallNanos);
    }

    public Workload withQueueDepth(int qd) {
        return new Workload(pattern, readPercent, blockSize, qd, durationNanos, requests, verify, seed, regionOffset,
                regionBytes, segments, stallNanos);
    }

    public Workload withRequests(long n) {
        return new Workload(pattern, readPercent, blockSize, queueDepth, 0, n, verify, seed, regionOffset,
                regionBytes, segments, stallNanos);
    }

    public Workload withDuration(long nanos) {
        return new Workload(pattern, readPercent, blockSize, queueDepth, nanos, 0, verify, seed, regionOffset,
                regionBytes, segments, stallNanos);
    }

    public Workload withVerify(boolean on) {
        return new Workload(pattern, readPercent, blockSize, queueDepth, durationNanos, requests, on, seed,
                regionOffset, regionBytes, segments, stallNanos);
    }

    public Workload withSeed(long s) {
        return new Workload(pattern, readPercent, blockSize, queueDepth, durationNanos, requests, verify, s,
                regionOffset, regionBytes, segments, stallNanos);
    }

    public Workload withRegion(long offset, long bytes) {
        return new Workload(pattern, readPercent, blockSize, queueDepth, durationNanos, requests, verify, seed,
                offset, bytes, segments, stallNanos);
    }

    public Workload withSegments(int n) {
        return new Workload(pattern, readPercent, blockSize, queueDepth, durationNanos, requests, verify, seed,
                regionOffset, regionBytes, n, stallNanos);
    }

    public Workload withStallNanos(long n) {
        return new Workload(pattern, readPercent, blockSize, queueDepth, durationNanos, requests, verify, seed,
                regionOffset, regionBytes, segments, n);
    }

    /** The share of reads actually used: 100 for read-only patterns, 0 for write-only ones. */
    public int effectiveReadPercent() {
        if (!pattern.writes) {
            return 100;
        }
        if (!pattern.reads) {
            return 0;
        }
        return readPercent;
    }
}
