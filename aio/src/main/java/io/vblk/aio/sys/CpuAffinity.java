package io.vblk.aio.sys;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.BitSet;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

/**
 * Any thread; each call acts on the calling thread only. Control plane (start-up), never the
 * request path.
 *
 * <p>CPU placement of the calling thread: {@code sched_setaffinity(2)} / {@code sched_getaffinity(2)}
 * with pid 0 ("the calling thread"), and the CPU-list syntax of {@code taskset -c} and cpuset
 * ({@code 1}, {@code 0-1,3}). Calls return 0 or {@code -errno}; bad lists throw
 * {@link IllegalArgumentException} with a message that says what is accepted.
 */
@SuppressWarnings("restricted") // downcall handles; native access is enabled for vblk
public final class CpuAffinity {
    /** CPUs a mask can name: glibc's CPU_SETSIZE (sched.h), a 128-byte cpu_set_t. */
    public static final int MAX_CPUS = 1024;
    private static final long MASK_BYTES = MAX_CPUS / 8;
    /** What a CPU list accepts, for error messages. */
    public static final String ACCEPTS = "a CPU list such as 1 or 0-1,3 (CPU numbers 0.." + (MAX_CPUS - 1)
            + ", ranges low-high, separated by ',' or ':')";

    private static final Linker LINKER = Linker.nativeLinker();
    private static final StructLayout CAPTURE = Linker.Option.captureStateLayout();
    private static final long ERRNO = CAPTURE.byteOffset(MemoryLayout.PathElement.groupElement("errno"));
    /** int sched_setaffinity(pid_t pid, size_t cpusetsize, const cpu_set_t *mask) */
    private static final MethodHandle SET = handle("sched_setaffinity");
    /** int sched_getaffinity(pid_t pid, size_t cpusetsize, cpu_set_t *mask) */
    private static final MethodHandle GET = handle("sched_getaffinity");

    private CpuAffinity() {
    }

    private static MethodHandle handle(String name) {
        return LINKER.downcallHandle(LINKER.defaultLookup().findOrThrow(name),
                FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG),
                Linker.Option.captureCallState("errno"));
    }

    /**
     * Parses a CPU list ({@code "1"}, {@code "0-1,3"}, {@code "0-1:3"}); ':' is accepted as a
     * separator because ',' ends a property in {@code --object iothread,...}.
     *
     * @throws IllegalArgumentException naming the bad part and {@link #ACCEPTS}
     */
    public static BitSet parse(String list) {
        if (list == null || list.isBlank()) {
            throw new IllegalArgumentException("empty CPU list; accepts " + ACCEPTS);
        }
        BitSet cpus = new BitSet();
        for (String part : list.split("[,:]", -1)) {
            String p = part.strip();
            int dash = p.indexOf('-');
            int lo = cpu(p.substring(0, dash < 0 ? p.length() : dash), list);
            int hi = dash < 0 ? lo : cpu(p.substring(dash + 1), list);
            if (hi < lo) {
                throw new IllegalArgumentException("CPU range " + p + " in \"" + list + "\" runs backwards; accepts " + ACCEPTS);
            }
            cpus.set(lo, hi + 1);
        }
        return cpus;
    }

    private static int cpu(String s, String list) {
        if (s.isEmpty() || !s.chars().allMatch(Character::isDigit) || s.length() > 4) {
            throw new IllegalArgumentException("\"" + s + "\" in CPU list \"" + list + "\" is not a CPU number; accepts " + ACCEPTS);
        }
        int n = Integer.parseInt(s);
        if (n >= MAX_CPUS) {
            throw new IllegalArgumentException("CPU " + n + " in \"" + list + "\" is out of range; accepts " + ACCEPTS);
        }
        return n;
    }

    /** Formats a set as a CPU list ("0-1,3"). */
    public static String format(BitSet cpus) {
        StringBuilder b = new StringBuilder();
        for (int lo = cpus.nextSetBit(0); lo >= 0; ) {
            int hi = cpus.nextClearBit(lo) - 1;
            b.append(b.isEmpty() ? "" : ",").append(lo);
            if (hi > lo) {
                b.append('-').append(hi);
            }
            lo = cpus.nextSetBit(hi + 1);
        }
        return b.toString();
    }

    /**
     * Throws unless every CPU of {@code cpus} is one the calling thread may run on now (its
     * affinity mask, which cpusets and taskset narrow), naming those that are not.
     */
    public static void checkAvailable(BitSet cpus, String what) {
        BitSet allowed = ofCurrentThread();
        BitSet missing = (BitSet) cpus.clone();
        missing.andNot(allowed);
        if (cpus.isEmpty() || !missing.isEmpty()) {
            throw new IllegalArgumentException(what + ": CPU " + format(missing) + " is not available to this process"
                    + " (available: " + format(allowed) + ")");
        }
    }

    /** Binds the calling thread to {@code cpus}: 0 or -errno (EINVAL: none of them usable). */
    public static int setCurrentThread(BitSet cpus) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment mask = a.allocate(MASK_BYTES, 8);
            long[] words = cpus.toLongArray(); // bit i of word w is CPU 64w+i, as cpu_set_t on LP64
            for (int i = 0; i < words.length; i++) {
                mask.setAtIndex(ValueLayout.JAVA_LONG, i, words[i]);
            }
            MemorySegment state = a.allocate(CAPTURE);
            int r = (int) SET.invokeExact(state, 0, MASK_BYTES, mask.address());
            return r < 0 ? -state.get(JAVA_INT, ERRNO) : 0;
        } catch (Throwable t) {
            throw new IllegalStateException("sched_setaffinity", t);
        }
    }

    /** The calling thread's affinity mask. */
    public static BitSet ofCurrentThread() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment mask = a.allocate(MASK_BYTES, 8);
            MemorySegment state = a.allocate(CAPTURE);
            int r = (int) GET.invokeExact(state, 0, MASK_BYTES, mask.address());
            if (r < 0) {
                throw new IllegalStateException("sched_getaffinity failed: " + Errno.name(state.get(JAVA_INT, ERRNO)));
            }
            return BitSet.valueOf(mask.toArray(JAVA_LONG));
        } catch (IllegalStateException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("sched_getaffinity", t);
        }
    }
}
