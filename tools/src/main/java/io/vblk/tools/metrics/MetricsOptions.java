package io.vblk.tools.metrics;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Any thread (immutable).
 *
 * <p>Where the metrics endpoint listens, from the command line, in either form:
 *
 * <pre>
 *   --metrics 127.0.0.1:9200                          host:port, [v6]:port, :port or port
 *   --object metrics,id=m0,addr=127.0.0.1:9200        qemu-storage-daemon style object
 *   --object metrics,id=m0,host=::1,port=9200,path=/metrics
 * </pre>
 *
 * The host defaults to the loopback address: the endpoint shows the machine's disks and load to
 * whoever can reach it, so listening wider is a deliberate choice ({@code addr=0.0.0.0:9200}).
 * Port 0 takes a free port (tests). The host must be a literal address or {@code localhost}; no
 * name lookup happens at start-up.
 *
 * @param id   the object id ({@code m0} for the {@code --metrics} form)
 * @param host the address to bind
 * @param port 0..65535
 * @param path the HTTP path serving the exposition, starting with {@code /}
 */
public record MetricsOptions(String id, String host, int port, String path) {
    /** The port Prometheus exporters of this kind conventionally avoid clashing with. */
    public static final int DEFAULT_PORT = 9200;
    public static final String DEFAULT_HOST = "127.0.0.1";
    public static final String DEFAULT_PATH = "/metrics";
    private static final String ADDR_FORMS = "host:port, [ipv6]:port, :port or port (host defaults to 127.0.0.1)";

    public MetricsOptions {
        if (id == null || !id.matches("[A-Za-z][A-Za-z0-9_.-]{0,63}")) {
            throw new MetricsOptionException("metrics id must start with a letter and use letters, digits, '_', '.', '-'"
                    + " (at most 64), got '" + id + "'");
        }
        if (port < 0 || port > 65535) {
            throw new MetricsOptionException("metrics port must be 0..65535, got " + port);
        }
        if (path == null || !path.startsWith("/") || path.contains(" ")) {
            throw new MetricsOptionException("metrics path must start with '/' and have no spaces, got '" + path + "'");
        }
        literalAddress(host);
    }

    /** Loopback, port {@value #DEFAULT_PORT}, {@code /metrics}. */
    public static MetricsOptions defaults() {
        return new MetricsOptions("m0", DEFAULT_HOST, DEFAULT_PORT, DEFAULT_PATH);
    }

    /** The value of {@code --metrics}. */
    public static MetricsOptions parseAddress(String value) {
        HostPort hp = hostPort(value, "--metrics");
        return new MetricsOptions("m0", hp.host, hp.port, DEFAULT_PATH);
    }

    /**
     * The value of {@code --object} when it starts with {@code metrics,}: keys {@code id}
     * (required), {@code addr} or {@code host}/{@code port}, and {@code path}.
     */
    public static MetricsOptions parseObject(String value) {
        if (value == null || !(value.equals("metrics") || value.startsWith("metrics,"))) {
            throw new MetricsOptionException("--object: expected 'metrics,id=ID,addr=HOST:PORT', got '" + value + "'");
        }
        Map<String, String> kv = new LinkedHashMap<>();
        String rest = value.length() > "metrics".length() ? value.substring("metrics,".length()) : "";
        if (!rest.isEmpty()) {
            for (String part : rest.split(",", -1)) {
                int eq = part.indexOf('=');
                if (eq <= 0) {
                    throw new MetricsOptionException("--object metrics: expected key=value, got '" + part
                            + "' (keys: id, addr, host, port, path)");
                }
                String k = part.substring(0, eq);
                if (kv.put(k, part.substring(eq + 1)) != null) {
                    throw new MetricsOptionException("--object metrics: '" + k + "' given twice");
                }
            }
        }
        for (String k : kv.keySet()) {
            if (!k.equals("id") && !k.equals("addr") && !k.equals("host") && !k.equals("port") && !k.equals("path")) {
                throw new MetricsOptionException("--object metrics: unknown key '" + k + "' (keys: id, addr, host, port, path)");
            }
        }
        String id = kv.get("id");
        if (id == null) {
            throw new MetricsOptionException("--object metrics: 'id' is required, e.g. --object metrics,id=m0,addr=127.0.0.1:9200");
        }
        String host = DEFAULT_HOST;
        int port = DEFAULT_PORT;
        if (kv.containsKey("addr")) {
            if (kv.containsKey("host") || kv.containsKey("port")) {
                throw new MetricsOptionException("--object metrics: give either addr= or host=/port=, not both");
            }
            HostPort hp = hostPort(kv.get("addr"), "--object metrics addr");
            host = hp.host;
            port = hp.port;
        } else {
            if (kv.containsKey("host")) {
                host = kv.get("host");
            }
            if (kv.containsKey("port")) {
                port = port(kv.get("port"), "--object metrics port");
            }
        }
        return new MetricsOptions(id, host, port, kv.getOrDefault("path", DEFAULT_PATH));
    }

    /** The socket address to bind. */
    public InetSocketAddress socketAddress() {
        return new InetSocketAddress(literalAddress(host), port);
    }

    /** The option in {@code --object} form, e.g. for logs. */
    public String toObjectString() {
        String h = host.contains(":") ? "[" + host + "]" : host;
        return "metrics,id=" + id + ",addr=" + h + ":" + port + (DEFAULT_PATH.equals(path) ? "" : ",path=" + path);
    }

    private record HostPort(String host, int port) {
    }

    private static HostPort hostPort(String v, String option) {
        if (v == null || v.isBlank()) {
            throw new MetricsOptionException(option + ": expected " + ADDR_FORMS + ", got nothing");
        }
        String host;
        String port;
        if (v.startsWith("[")) {
            int close = v.indexOf(']');
            if (close < 0 || close + 1 >= v.length() || v.charAt(close + 1) != ':') {
                throw new MetricsOptionException(option + ": expected " + ADDR_FORMS + ", got '" + v + "'");
            }
            host = v.substring(1, close);
            port = v.substring(close + 2);
        } else {
            int colon = v.lastIndexOf(':');
            if (colon < 0) {
                host = DEFAULT_HOST;
                port = v;
            } else if (v.indexOf(':') != colon) {
                throw new MetricsOptionException(option + ": an IPv6 address needs brackets, e.g. [::1]:9200; got '" + v + "'");
            } else {
                host = colon == 0 ? DEFAULT_HOST : v.substring(0, colon);
                port = v.substring(colon + 1);
            }
        }
        return new HostPort(host, port(port, option));
    }

    private static int port(String s, String option) {
        if (!s.matches("[0-9]{1,5}")) {
            throw new MetricsOptionException(option + ": port must be a number 0..65535, got '" + s + "'");
        }
        int p = Integer.parseInt(s);
        if (p > 65535) {
            throw new MetricsOptionException(option + ": port must be 0..65535, got " + p);
        }
        return p;
    }

    private static InetAddress literalAddress(String host) {
        if (host == null || host.isEmpty()) {
            throw new MetricsOptionException("metrics host must be an IP address or 'localhost', got nothing");
        }
        if (host.equals("localhost")) {
            return InetAddress.getLoopbackAddress();
        }
        boolean v4 = host.matches("[0-9]{1,3}(\\.[0-9]{1,3}){3}");
        if (v4) {
            for (String octet : host.split("\\.")) {
                if (Integer.parseInt(octet) > 255) {
                    throw new MetricsOptionException("metrics host '" + host + "' is not a valid IPv4 address");
                }
            }
        }
        boolean v6 = host.contains(":") && host.matches("[0-9A-Fa-f:.]+");
        if (!v4 && !v6) {
            throw new MetricsOptionException("metrics host must be an IP address or 'localhost', got '" + host + "'");
        }
        try {
            // A literal: getByName parses it without a lookup.
            return InetAddress.getByName(host);
        } catch (UnknownHostException e) {
            throw new MetricsOptionException("metrics host '" + host + "' is not a valid IP address");
        }
    }
}
