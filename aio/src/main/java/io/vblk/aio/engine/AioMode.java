package io.vblk.aio.engine;

/**
 * Any thread (immutable).
 *
 * <p>Which I/O engine a file node uses, with QEMU's spellings of the {@code aio=} option: the one
 * type every layer (driver spec, file driver, {@code vblk serve}, {@code vblk bench}) uses for it.
 */
public enum AioMode {
    /** A pool of worker threads running preadv/pwritev (QEMU's default). */
    THREADS("threads"),
    /** Linux native AIO: io_submit, completion eventfd, the completion ring. */
    NATIVE("native"),
    /** io_uring. */
    IO_URING("io_uring");

    private final String spelling;

    AioMode(String spelling) {
        this.spelling = spelling;
    }

    /** QEMU's spelling: "threads", "native", "io_uring". */
    public String spelling() {
        return spelling;
    }

    /** Every spelling, in declaration order. */
    public static String[] spellings() {
        AioMode[] all = values();
        String[] s = new String[all.length];
        for (int i = 0; i < all.length; i++) {
            s[i] = all[i].spelling;
        }
        return s;
    }

    /** The accepted spellings, for error messages: "threads, native or io_uring". */
    public static String accepted() {
        return "threads, native or io_uring";
    }

    /**
     * The mode spelled {@code s}; an {@link IllegalArgumentException} naming the accepted values
     * otherwise. Callers prefix the option's name.
     */
    public static AioMode parse(String s) {
        for (AioMode m : values()) {
            if (m.spelling.equals(s)) {
                return m;
            }
        }
        throw new IllegalArgumentException("aio: '" + s + "' is not accepted; use " + accepted());
    }

    @Override
    public String toString() {
        return spelling;
    }
}
