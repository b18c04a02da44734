package io.vblk.tools.metrics;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Any thread (immutable).
 *
 * <p>One reading of a process's footprint from {@code /proc}: resident set size (VmRSS in
 * {@code /proc/PID/status}, kB), open file descriptors (entries of {@code /proc/PID/fd}) and
 * threads ({@code Threads:} in the same status file).
 */
public record ProcessSample(long rssKb, int fds, int threads) {

    /** Reads {@code pid}'s footprint; IOException when the process is gone. */
    public static ProcessSample of(long pid) throws IOException {
        Path proc = Path.of("/proc", Long.toString(pid));
        long rss = -1;
        int threads = -1;
        for (String line : Files.readAllLines(proc.resolve("status"))) {
            if (line.startsWith("VmRSS:")) {
                rss = Long.parseLong(line.substring(6).trim().split("\\s+")[0]);
            } else if (line.startsWith("Threads:")) {
                threads = Integer.parseInt(line.substring(8).trim());
            }
        }
        int fds = 0;
        try (DirectoryStream<Path> d = Files.newDirectoryStream(proc.resolve("fd"))) {
            for (Path ignored : d) {
                fds++;
            }
        }
        if (rss < 0 || threads < 0) {
            throw new IOException("no VmRSS/Threads in " + proc.resolve("status"));
        }
        return new ProcessSample(rss, fds, threads);
    }
}
