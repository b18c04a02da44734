package io.vblk.tools.qmp;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Any thread: immutable.
 *
 * <p>A QMP monitor asked for on the command line, from qemu-storage-daemon's two options:
 * {@code --chardev socket,id=ID,path=P,server=on,wait=off} (or {@code addr.type=fd,addr.str=N} /
 * {@code fd=N} for a listening socket inherited through socket activation) and
 * {@code --monitor chardev=ID[,mode=control][,pretty=off]}.
 *
 * @param path the socket path to create, or null for an inherited fd
 * @param fd   the inherited listening fd, or -1
 */
public record MonitorSpec(String chardev, String path, int fd) {

    /** Where it listens, for log lines. */
    public String describe() {
        return path != null ? "unix:" + path : "fd:" + fd;
    }

    /**
     * Checks {@code --chardev} and {@code --monitor} arguments: every monitor names a chardev, each
     * chardev is a listening UNIX socket. Throws {@link IllegalArgumentException} naming the option
     * and what it accepts.
     */
    public static List<MonitorSpec> parse(List<String> chardevs, List<String> monitors) {
        Map<String, MonitorSpec> byId = new LinkedHashMap<>();
        for (String text : chardevs) {
            Map<String, String> o = keyValues("--chardev", text, "backend");
            String where = "--chardev " + text;
            if (!"socket".equals(o.remove("backend"))) {
                throw new IllegalArgumentException(where + ": only the socket backend is supported; accepts socket,id=ID,path=P,server=on,wait=off");
            }
            String id = o.remove("id");
            if (id == null || !id.matches("[A-Za-z][A-Za-z0-9._-]*")) {
                throw new IllegalArgumentException(where + ": needs id=ID (a letter followed by letters, digits, '-', '.' or '_')");
            }
            if (!"on".equals(o.getOrDefault("server", "off"))) {
                throw new IllegalArgumentException(where + ": server=on is required (the monitor listens; QEMU's client mode is not supported)");
            }
            o.remove("server");
            String wait = o.remove("wait");
            if (wait != null && !wait.equals("off")) {
                throw new IllegalArgumentException(where + ": wait=" + wait + " is not supported; accepts wait=off");
            }
            String path = o.remove("path");
            String addrType = o.remove("addr.type");
            String fdText = o.containsKey("fd") ? o.remove("fd") : o.remove("addr.str");
            if (addrType != null && !addrType.equals("fd") && !addrType.equals("unix")) {
                throw new IllegalArgumentException(where + ": addr.type=" + addrType + " is not supported; accepts unix or fd");
            }
            if ("unix".equals(addrType) && path == null) {
                path = fdText;
                fdText = null;
            }
            int fd = -1;
            if (path == null) {
                if (fdText == null) {
                    throw new IllegalArgumentException(where + ": needs path=P (a socket to create) or fd=N (an inherited listening socket)");
                }
                try {
                    fd = Integer.parseInt(fdText);
                } catch (NumberFormatException e) {
                    fd = -1;
                }
                if (fd < 0) {
                    throw new IllegalArgumentException(where + ": fd=" + fdText + " is not a file descriptor number; accepts a non-negative integer");
                }
            } else if (fdText != null) {
                throw new IllegalArgumentException(where + ": give either path=P or fd=N, not both");
            }
            if (!o.isEmpty()) {
                throw new IllegalArgumentException(where + ": unknown key(s) " + String.join(", ", o.keySet())
                        + "; accepts id, path, fd, addr.type, addr.str, server, wait");
            }
            if (byId.put(id, new MonitorSpec(id, path, fd)) != null) {
                throw new IllegalArgumentException(where + ": id " + id + " is used by another --chardev");
            }
        }
        List<MonitorSpec> out = new ArrayList<>();
        for (String text : monitors) {
            Map<String, String> o = keyValues("--monitor", text, "chardev");
            String where = "--monitor " + text;
            String id = o.remove("chardev");
            String mode = o.remove("mode");
            o.remove("pretty");
            if (mode != null && !mode.equals("control")) {
                throw new IllegalArgumentException(where + ": mode=" + mode + " is not supported; accepts mode=control (QMP)");
            }
            if (!o.isEmpty()) {
                throw new IllegalArgumentException(where + ": unknown key(s) " + String.join(", ", o.keySet()) + "; accepts chardev, mode, pretty");
            }
            MonitorSpec m = id == null ? null : byId.remove(id);
            if (m == null) {
                throw new IllegalArgumentException(where + ": chardev=" + id + " names no unused --chardev; accepts the id of a --chardev socket,..."
                        + (byId.isEmpty() ? " (none is left)" : " (unused: " + String.join(", ", byId.keySet()) + ")"));
            }
            out.add(m);
        }
        return List.copyOf(out);
    }

    /** QEMU's key=value list: ",," is a literal comma; a first item without '=' is {@code implicitKey}'s value. */
    static Map<String, String> keyValues(String option, String text, String implicitKey) {
        Map<String, String> m = new HashMap<>();
        List<String> items = new ArrayList<>();
        StringBuilder cur = new StringBuilder();
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c == ',' && i + 1 < text.length() && text.charAt(i + 1) == ',') {
                cur.append(',');
                i++;
            } else if (c == ',') {
                items.add(cur.toString());
                cur.setLength(0);
            } else {
                cur.append(c);
            }
        }
        items.add(cur.toString());
        for (int i = 0; i < items.size(); i++) {
            String it = items.get(i);
            int eq = it.indexOf('=');
            String k = eq < 0 && i == 0 ? implicitKey : eq < 0 ? null : it.substring(0, eq);
            if (k == null || k.isEmpty()) {
                throw new IllegalArgumentException(option + " " + text + ": '" + it + "' is not key=value");
            }
            if (m.put(k, eq < 0 ? it : it.substring(eq + 1)) != null) {
                throw new IllegalArgumentException(option + " " + text + ": key " + k + " is given twice");
            }
        }
        return m;
    }
}
