package io.vblk.tools.metrics;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;

import java.io.IOException;
import java.io.OutputStream;
import java.net.BindException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Home thread: its own single HTTP thread ({@code vblk-metrics}) serves scrapes, one at a time;
 * {@link #start} and {@link #close} from any thread. It never runs on an IoThread, so a slow scrape
 * cannot stall I/O; the components' getters it reads are racy snapshots (see {@link VblkMetrics}).
 *
 * <p>The Prometheus endpoint: the JDK's HTTP server serving {@code GET /metrics} (the path is an
 * option) with the exposition of a {@link VblkMetrics}: OpenMetrics 1.0 when the request's
 * {@code Accept} header asks for {@code application/openmetrics-text} (Prometheus does), else the
 * text format 0.0.4. Anything else gets 404 or 405.
 */
public final class MetricsServer implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(MetricsServer.class.getName());

    private final HttpServer http;
    private final ExecutorService executor;
    private final MetricsOptions options;
    private final VblkMetrics metrics;
    private final AtomicLong scrapes = new AtomicLong();

    private MetricsServer(HttpServer http, ExecutorService executor, MetricsOptions options, VblkMetrics metrics) {
        this.http = http;
        this.executor = executor;
        this.options = options;
        this.metrics = metrics;
    }

    /**
     * Binds and starts serving. A port in use or an address not on this host fails with a
     * {@link MetricsOptionException} naming the option.
     */
    public static MetricsServer start(MetricsOptions options, VblkMetrics metrics) {
        InetSocketAddress addr = options.socketAddress();
        HttpServer http;
        try {
            http = HttpServer.create(addr, 16);
        } catch (BindException e) {
            throw new MetricsOptionException("metrics endpoint " + options.toObjectString() + ": cannot listen on "
                    + addr + " (" + e.getMessage() + "): pick a free port, or port 0 for any");
        } catch (IOException e) {
            throw new IllegalStateException("metrics endpoint " + options.toObjectString() + ": " + e.getMessage(), e);
        }
        ExecutorService ex = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "vblk-metrics");
            t.setDaemon(true);
            return t;
        });
        MetricsServer s = new MetricsServer(http, ex, options, metrics);
        http.createContext("/", s::handle);
        http.setExecutor(ex);
        http.start();
        LOG.log(System.Logger.Level.INFO, "metrics endpoint on http://" + s.hostPort() + options.path());
        return s;
    }

    /** The bound address (with the real port when the option said 0). */
    public InetSocketAddress address() {
        return http.getAddress();
    }

    /** {@code host:port} of the bound address, IPv6 in brackets. */
    public String hostPort() {
        InetSocketAddress a = address();
        String h = a.getAddress().getHostAddress();
        return (h.contains(":") ? "[" + h + "]" : h) + ":" + a.getPort();
    }

    /** The URL Prometheus should scrape. */
    public String url() {
        return "http://" + hostPort() + options.path();
    }

    /** Scrapes served so far. Any thread. */
    public long scrapes() {
        return scrapes.get();
    }

    private void handle(HttpExchange ex) throws IOException {
        try (ex) {
            String method = ex.getRequestMethod();
            if (!ex.getRequestURI().getPath().equals(options.path())) {
                reply(ex, 404, "text/plain; charset=utf-8", "not found; metrics are at " + options.path() + "\n", true);
                return;
            }
            boolean head = method.equals("HEAD");
            if (!method.equals("GET") && !head) {
                ex.getResponseHeaders().set("Allow", "GET, HEAD");
                reply(ex, 405, "text/plain; charset=utf-8", "method not allowed\n", true);
                return;
            }
            VblkMetrics.Scrape s;
            try {
                s = metrics.scrape(ex.getRequestHeaders().getFirst("Accept"));
            } catch (RuntimeException e) {
                LOG.log(System.Logger.Level.ERROR, "metrics scrape failed", e);
                reply(ex, 500, "text/plain; charset=utf-8", "scrape failed: " + e + "\n", true);
                return;
            }
            scrapes.incrementAndGet();
            reply(ex, 200, s.contentType(), s.body(), !head);
        }
    }

    private static void reply(HttpExchange ex, int code, String type, String body, boolean withBody) throws IOException {
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", type);
        if (!withBody) {
            ex.sendResponseHeaders(code, -1);
            return;
        }
        ex.sendResponseHeaders(code, bytes.length);
        try (OutputStream out = ex.getResponseBody()) {
            out.write(bytes);
        }
    }

    /** Stops listening and waits (bounded) for a scrape in progress. Any thread. */
    @Override
    public void close() {
        http.stop(0);
        executor.shutdown();
        try {
            if (!executor.awaitTermination(5, TimeUnit.SECONDS)) {
                executor.shutdownNow();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            executor.shutdownNow();
        }
    }

    @Override
    public String toString() {
        return "MetricsServer[" + url() + "]";
    }
}
