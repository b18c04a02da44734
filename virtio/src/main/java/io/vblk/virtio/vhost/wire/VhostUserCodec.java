package io.vblk.virtio.vhost.wire;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

import static io.vblk.virtio.vhost.wire.VhostUserMessageLayout.*;

/**
 * Any thread: stateless.
 *
 * <p>Encodes and decodes the payloads of {@link VhostUserMessageLayout}. Every message from the wire
 * has passed the request table in {@link VhostUserFramer} (sizes, counts, fds) before it is
 * decoded; the decoders apply the same rules to a message built elsewhere (a test, a caller's
 * bug) and throw {@link VhostUserProtocolException} naming the message and what they expected.
 * They check nothing else (the handler checks meaning).
 */
public final class VhostUserCodec {
    private VhostUserCodec() {
    }

    /** vring state description: {@code index}, {@code num}. */
    public record VringState(int index, int num) {
    }

    /** vring address description; addresses are front-end virtual addresses, {@code log} is guest-physical. */
    public record VringAddr(int index, int flags, long desc, long used, long avail, long log) {
    }

    /** One memory region; {@code uaddr} is the front-end's virtual address of its first byte. */
    public record MemRegion(long gpa, long size, long uaddr, long mmapOffset) {
        public String describe() {
            return "[gpa 0x" + Long.toHexString(gpa) + ", size 0x" + Long.toHexString(size) + ", uaddr 0x"
                    + Long.toHexString(uaddr) + ", mmap_offset 0x" + Long.toHexString(mmapOffset) + "]";
        }
    }

    /** Virtio device config space access: {@code data.length == size} for SET_CONFIG and replies. */
    public record ConfigSpace(int offset, int size, int flags, byte[] data) {
    }

    /** Log description (SET_LOG_BASE): the shared log's size and offset in its fd. */
    public record LogBase(long mmapSize, long mmapOffset) {
    }

    /** Inflight description (GET_INFLIGHT_FD / SET_INFLIGHT_FD). */
    public record Inflight(long mmapSize, long mmapOffset, int numQueues, int queueSize) {
    }

    // ---------------------------------------------------------------- u64

    public static byte[] u64(long v) {
        byte[] b = new byte[U64_BYTES];
        putLong(MemorySegment.ofArray(b), 0, v);
        return b;
    }

    public static long decodeU64(VhostUserMessage m) throws VhostUserProtocolException {
        expectSize(m, U64_BYTES);
        return getLong(m.payloadSegment(), 0);
    }

    // ---------------------------------------------------------------- vring state / address

    public static byte[] vringState(int index, int num) {
        byte[] b = new byte[VRING_STATE_BYTES];
        MemorySegment s = MemorySegment.ofArray(b);
        putInt(s, VRING_STATE_INDEX, index);
        putInt(s, VRING_STATE_NUM, num);
        return b;
    }

    public static VringState decodeVringState(VhostUserMessage m) throws VhostUserProtocolException {
        expectSize(m, VRING_STATE_BYTES);
        MemorySegment s = m.payloadSegment();
        return new VringState(getInt(s, VRING_STATE_INDEX), getInt(s, VRING_STATE_NUM));
    }

    public static byte[] vringAddr(VringAddr a) {
        byte[] b = new byte[VRING_ADDR_BYTES];
        MemorySegment s = MemorySegment.ofArray(b);
        putInt(s, VRING_ADDR_INDEX, a.index());
        putInt(s, VRING_ADDR_FLAGS, a.flags());
        putLong(s, VRING_ADDR_DESC, a.desc());
        putLong(s, VRING_ADDR_USED, a.used());
        putLong(s, VRING_ADDR_AVAIL, a.avail());
        putLong(s, VRING_ADDR_LOG, a.log());
        return b;
    }

    public static VringAddr decodeVringAddr(VhostUserMessage m) throws VhostUserProtocolException {
        expectSize(m, VRING_ADDR_BYTES);
        MemorySegment s = m.payloadSegment();
        return new VringAddr(getInt(s, VRING_ADDR_INDEX), getInt(s, VRING_ADDR_FLAGS), getLong(s, VRING_ADDR_DESC),
                getLong(s, VRING_ADDR_USED), getLong(s, VRING_ADDR_AVAIL), getLong(s, VRING_ADDR_LOG));
    }

    // ---------------------------------------------------------------- memory

    public static byte[] memTable(List<MemRegion> regions) {
        if (regions.size() > MAX_MEM_TABLE_REGIONS) {
            throw new IllegalArgumentException("a memory table holds at most " + MAX_MEM_TABLE_REGIONS + " regions");
        }
        byte[] b = new byte[MEM_TABLE_MIN_BYTES + REGION_BYTES * regions.size()];
        MemorySegment s = MemorySegment.ofArray(b);
        putInt(s, MEM_TABLE_NREGIONS, regions.size());
        for (int i = 0; i < regions.size(); i++) {
            putRegion(s, MEM_TABLE_REGIONS + (long) REGION_BYTES * i, regions.get(i));
        }
        return b;
    }

    /**
     * Decodes SET_MEM_TABLE by the table's rule ({@link PayloadRule#MEM_TABLE}), which the framer
     * has applied to every message from the wire already.
     */
    public static List<MemRegion> decodeMemTable(VhostUserMessage m) throws VhostUserProtocolException {
        if (m.size() < MEM_TABLE_MIN_BYTES) {
            throw new VhostUserProtocolException(m.describe() + ": payload of " + m.size()
                    + " bytes, the memory table needs at least " + MEM_TABLE_MIN_BYTES);
        }
        MemorySegment s = m.payloadSegment();
        check(PayloadRule.MEM_TABLE.check(m.describe(), s, m.size()));
        int n = getInt(s, MEM_TABLE_NREGIONS);
        List<MemRegion> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            out.add(getRegion(s, MEM_TABLE_REGIONS + (long) REGION_BYTES * i));
        }
        return out;
    }

    public static byte[] memReg(MemRegion r) {
        byte[] b = new byte[MEM_REG_BYTES];
        putRegion(MemorySegment.ofArray(b), MEM_REG_REGION, r);
        return b;
    }

    public static MemRegion decodeMemReg(VhostUserMessage m) throws VhostUserProtocolException {
        expectSize(m, MEM_REG_BYTES);
        return getRegion(m.payloadSegment(), MEM_REG_REGION);
    }

    private static void putRegion(MemorySegment s, long at, MemRegion r) {
        putLong(s, at + REGION_GPA, r.gpa());
        putLong(s, at + REGION_SIZE, r.size());
        putLong(s, at + REGION_UADDR, r.uaddr());
        putLong(s, at + REGION_MMAP_OFFSET, r.mmapOffset());
    }

    private static MemRegion getRegion(MemorySegment s, long at) {
        return new MemRegion(getLong(s, at + REGION_GPA), getLong(s, at + REGION_SIZE), getLong(s, at + REGION_UADDR),
                getLong(s, at + REGION_MMAP_OFFSET));
    }

    // ---------------------------------------------------------------- config space

    /** A GET_CONFIG request or SET_CONFIG/GET_CONFIG payload: header plus {@code data} (size = data.length). */
    public static byte[] config(int offset, int flags, byte[] data) {
        if (data.length > MAX_CONFIG_BYTES) {
            throw new IllegalArgumentException("config access of " + data.length + " bytes, at most " + MAX_CONFIG_BYTES);
        }
        byte[] b = new byte[CONFIG_HEADER_BYTES + data.length];
        MemorySegment s = MemorySegment.ofArray(b);
        putInt(s, CONFIG_OFFSET, offset);
        putInt(s, CONFIG_SIZE, data.length);
        putInt(s, CONFIG_FLAGS, flags);
        System.arraycopy(data, 0, b, (int) CONFIG_DATA, data.length);
        return b;
    }

    /**
     * Decodes a config payload by the table's rule ({@link PayloadRule#CONFIG}: size at most 256,
     * payload exactly header + size), which the framer has applied to every message from the wire.
     */
    public static ConfigSpace decodeConfig(VhostUserMessage m) throws VhostUserProtocolException {
        if (m.size() < CONFIG_HEADER_BYTES) {
            throw new VhostUserProtocolException(m.describe() + ": payload of " + m.size()
                    + " bytes, the config header alone is " + CONFIG_HEADER_BYTES);
        }
        MemorySegment s = m.payloadSegment();
        check(PayloadRule.CONFIG.check(m.describe(), s, m.size()));
        int size = getInt(s, CONFIG_SIZE);
        byte[] data = new byte[size];
        System.arraycopy(m.payload(), (int) CONFIG_DATA, data, 0, size);
        return new ConfigSpace(getInt(s, CONFIG_OFFSET), size, getInt(s, CONFIG_FLAGS), data);
    }

    private static void check(String why) throws VhostUserProtocolException {
        if (why != null) {
            throw new VhostUserProtocolException(why);
        }
    }

    // ---------------------------------------------------------------- inflight

    public static byte[] inflight(Inflight i) {
        byte[] b = new byte[INFLIGHT_BYTES];
        MemorySegment s = MemorySegment.ofArray(b);
        putLong(s, INFLIGHT_MMAP_SIZE, i.mmapSize());
        putLong(s, INFLIGHT_MMAP_OFFSET, i.mmapOffset());
        putU16(s, INFLIGHT_NUM_QUEUES, i.numQueues());
        putU16(s, INFLIGHT_QUEUE_SIZE, i.queueSize());
        return b;
    }

    public static Inflight decodeInflight(VhostUserMessage m) throws VhostUserProtocolException {
        expectSize(m, INFLIGHT_BYTES);
        MemorySegment s = m.payloadSegment();
        return new Inflight(getLong(s, INFLIGHT_MMAP_SIZE), getLong(s, INFLIGHT_MMAP_OFFSET),
                getU16(s, INFLIGHT_NUM_QUEUES), getU16(s, INFLIGHT_QUEUE_SIZE));
    }

    // ---------------------------------------------------------------- log

    public static byte[] logBase(LogBase l) {
        byte[] b = new byte[LOG_BYTES];
        MemorySegment s = MemorySegment.ofArray(b);
        putLong(s, LOG_MMAP_SIZE, l.mmapSize());
        putLong(s, LOG_MMAP_OFFSET, l.mmapOffset());
        return b;
    }

    public static LogBase decodeLogBase(VhostUserMessage m) throws VhostUserProtocolException {
        expectSize(m, LOG_BYTES);
        MemorySegment s = m.payloadSegment();
        return new LogBase(getLong(s, LOG_MMAP_SIZE), getLong(s, LOG_MMAP_OFFSET));
    }

    // ---------------------------------------------------------------- header

    /** Writes the 12-byte header of {@code m} at {@code at}. */
    public static void putHeader(MemorySegment s, long at, VhostUserMessage m) {
        putInt(s, at + REQUEST, m.request());
        putInt(s, at + FLAGS, m.flags());
        putInt(s, at + SIZE, m.size());
    }

    /** Header plus payload, as sent. */
    public static byte[] encode(VhostUserMessage m) {
        byte[] b = new byte[HEADER_BYTES + m.size()];
        putHeader(MemorySegment.ofArray(b), 0, m);
        System.arraycopy(m.payload(), 0, b, HEADER_BYTES, m.size());
        return b;
    }

    private static void expectSize(VhostUserMessage m, int size) throws VhostUserProtocolException {
        if (m.size() != size) {
            throw new VhostUserProtocolException(m.describe() + ": payload of " + m.size() + " bytes, expected " + size);
        }
    }
}
