package io.vblk.tools.qmp;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Any thread: a concurrent map; the command line fills it before the daemon starts, the monitor
 * changes it on the main loop.
 *
 * <p>The daemon's secret objects, as QEMU's {@code secret} QOM type ({@code crypto/secret.c}):
 * {@code --object secret,id=ID,data=STRING|file=PATH[,format=raw|base64]} and QMP
 * {@code object-add qom-type=secret}. A secret holds bytes: {@code data} or the file's content as
 * they are ({@code format=raw}, the default) or base64-decoded ({@code format=base64}). Users look
 * a secret up by id; the rbd driver's {@code key-secret} takes it as base64
 * ({@link #base64}, QEMU's {@code qcrypto_secret_lookup_as_base64}), which is what librados'
 * {@code key} option wants: so a cephx key is given as {@code data=AQB...==,format=base64}, or in
 * a file holding the key's raw bytes.
 *
 * <p>Encrypted secrets ({@code keyid}, {@code iv}) are not supported; their keys are refused as
 * unknown. Values are never logged or reported.
 */
public final class Secrets {
    private final Map<String, byte[]> values = new ConcurrentHashMap<>();

    /**
     * The value a secret object holds: exactly one of {@code data} and {@code file}, read according
     * to {@code format} (null: raw). Fails with a message naming what is wrong, never the value.
     * Base64 input may be surrounded by whitespace (a key file ends with a newline).
     */
    public static byte[] load(String id, String data, String file, String format) {
        if ((data == null) == (file == null)) {
            throw new IllegalArgumentException("secret " + id + ": give exactly one of 'data' and 'file'");
        }
        String f = format == null ? "raw" : format;
        if (!f.equals("raw") && !f.equals("base64")) {
            throw new IllegalArgumentException("secret " + id + ": format=" + f + " is not supported; accepts raw or base64");
        }
        byte[] raw;
        if (data != null) {
            raw = data.getBytes(StandardCharsets.UTF_8);
        } else {
            try {
                raw = Files.readAllBytes(Path.of(file));
            } catch (IOException | RuntimeException e) {
                throw new IllegalArgumentException("secret " + id + ": cannot read file '" + file + "': " + e.getMessage());
            }
        }
        if (f.equals("raw")) {
            return raw;
        }
        try {
            return Base64.getDecoder().decode(new String(raw, StandardCharsets.US_ASCII).strip());
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("secret " + id + ": the value is not valid base64 (format=base64)");
        }
    }

    /** Adds secret {@code id}; fails if one with that id exists. */
    public void add(String id, byte[] value) {
        if (values.putIfAbsent(id, value.clone()) != null) {
            throw new IllegalArgumentException("attempt to add duplicate property '" + id + "' to object (type 'container')");
        }
    }

    /** Removes secret {@code id}; false if there was none. */
    public boolean remove(String id) {
        return values.remove(id) != null;
    }

    public boolean contains(String id) {
        return values.containsKey(id);
    }

    /** Secret {@code id} base64-encoded; fails naming the id (QEMU's "No secret with id") when there is none. */
    public String base64(String id) {
        byte[] v = values.get(id);
        if (v == null) {
            throw new IllegalArgumentException("No secret with id '" + id + "'");
        }
        return Base64.getEncoder().encodeToString(v);
    }

    @Override
    public String toString() {
        return "Secrets" + values.keySet();
    }
}
