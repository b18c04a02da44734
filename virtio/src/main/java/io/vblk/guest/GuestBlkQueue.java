package io.vblk.guest;

import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.EventFds;
import io.vblk.aio.sys.FileIo;
import io.vblk.aio.sys.UnixSockets;

import java.lang.foreign.ValueLayout;

import static io.vblk.guest.BlkWireLayout.*;

/**
 * Home thread: the vCPU thread that drives this queue (set-up runs before that thread starts).
 * No locking. Counters are plain fields read by the same thread, or by others after it stopped.
 *
 * <p>One request queue of the guest's virtio-blk driver: preallocated {@link BlkSlot}s, the ring
 * (split or packed, {@link GuestRing}) they are posted on, and the queue's two eventfds (the guest writes the kick eventfd and
 * waits on the call eventfd). Posting, kicking and reaping allocate nothing.
 */
public final class GuestBlkQueue implements AutoCloseable {
    /** Who hears about a completed request. */
    @FunctionalInterface
    public interface Completion {
        /**
         * @param slot    the request; still acquired, so it may be posted again at once
         * @param status  the status byte (5.2.6: OK, IOERR, UNSUPP) or {@link BlkSlot#STATUS_UNSET}
         * @param usedLen bytes the device reported written (2.7.8: data read plus the status byte)
         */
        void completed(BlkSlot slot, int status, int usedLen);
    }

    private final int index;
    private final GuestRam ram;
    private final GuestRing vring;
    private final BlkSlot[] slots;
    private final int[] freeSlots;
    private int freeCount;
    private final int kickFd;
    private final int callFd;
    private final int maxSegments;
    private final boolean indirectNegotiated;
    private boolean indirect;
    private Completion completion;
    private final GuestRing.UsedConsumer onUsed = this::onUsed;

    // Counters.
    private long posted;
    private long completed;
    private long kicks;
    private long kicksSuppressed;
    private long wakeups;
    private long notifications;

    GuestBlkQueue(int index, GuestRam ram, int queueSize, int slotCount, int dataCapacity, int maxSegments,
                  boolean eventIdx, boolean indirectNegotiated, boolean interrupts) {
        this(index, ram, queueSize, slotCount, dataCapacity, maxSegments, eventIdx, indirectNegotiated, interrupts, false);
    }

    GuestBlkQueue(int index, GuestRam ram, int queueSize, int slotCount, int dataCapacity, int maxSegments,
                  boolean eventIdx, boolean indirectNegotiated, boolean interrupts, boolean packed) {
        if (slotCount <= 0) {
            throw new IllegalArgumentException("a queue needs at least one request slot");
        }
        if (maxSegments < 1) {
            throw new IllegalArgumentException("max segments must be >= 1, got " + maxSegments);
        }
        int perRequest = indirectNegotiated ? 1 : maxSegments + 2;
        if ((long) slotCount * perRequest > queueSize && !indirectNegotiated) {
            throw new IllegalArgumentException(slotCount + " requests of up to " + perRequest
                    + " descriptors do not fit a queue of " + queueSize);
        }
        if (slotCount > queueSize) {
            throw new IllegalArgumentException(slotCount + " requests do not fit a queue of " + queueSize);
        }
        this.index = index;
        this.ram = ram;
        this.vring = GuestRing.allocate(ram, queueSize, packed);
        this.vring.setEventIdx(eventIdx);
        this.maxSegments = maxSegments;
        this.indirectNegotiated = indirectNegotiated;
        this.indirect = indirectNegotiated;
        this.slots = new BlkSlot[slotCount];
        this.freeSlots = new int[slotCount];
        for (int i = 0; i < slotCount; i++) {
            slots[i] = new BlkSlot(ram, i, Math.max(dataCapacity, SECTOR_BYTES), maxSegments);
            freeSlots[i] = slotCount - 1 - i;
        }
        this.freeCount = slotCount;
        int kick = EventFds.eventfd(0, EventFds.EFD_NONBLOCK | EventFds.EFD_CLOEXEC);
        if (kick < 0) {
            throw new IllegalStateException("eventfd (kick): " + Errno.name(-kick));
        }
        int call = -1;
        if (interrupts) {
            call = EventFds.eventfd(0, EventFds.EFD_NONBLOCK | EventFds.EFD_CLOEXEC);
            if (call < 0) {
                FileIo.close(kick);
                throw new IllegalStateException("eventfd (call): " + Errno.name(-call));
            }
        }
        this.kickFd = kick;
        this.callFd = call;
        if (!interrupts) {
            vring.disableInterrupts();
        }
    }

    /**
     * A queue outside {@link GuestBlkDriver}: for a harness that brings the device up itself (a
     * step-driven device test, a vhost-user protocol test). {@code features} are the features
     * accepted from the device (EVENT_IDX and INDIRECT_DESC decide how the ring is driven);
     * {@code interrupts} false makes a polling queue without a call eventfd. The caller hands
     * {@link #vring()}'s layout and copies of the eventfds to the device.
     */
    public static GuestBlkQueue create(int index, GuestRam ram, int queueSize, int slotCount, int dataCapacity,
                                       int maxSegments, long features, boolean interrupts) {
        return new GuestBlkQueue(index, ram, queueSize, slotCount, dataCapacity, maxSegments,
                GuestFeatures.has(features, GuestFeatures.F_EVENT_IDX),
                GuestFeatures.has(features, GuestFeatures.F_INDIRECT_DESC), interrupts,
                GuestFeatures.has(features, GuestFeatures.F_RING_PACKED));
    }

    public int index() {
        return index;
    }

    /** The split ring (tests that forge split-ring entries); use {@link #ring()} for either layout. */
    public GuestVring vring() {
        if (vring instanceof GuestVring v) {
            return v;
        }
        throw new IllegalStateException("queue " + index + " runs on a packed ring; use ring()");
    }

    /** The ring requests are posted on, split or packed. */
    public GuestRing ring() {
        return vring;
    }

    public int kickFd() {
        return kickFd;
    }

    /** The call eventfd, or -1 when the guest polls the used ring instead of taking interrupts. */
    public int callFd() {
        return callFd;
    }

    public int slotCount() {
        return slots.length;
    }

    public BlkSlot slot(int i) {
        return slots[i];
    }

    public int maxSegments() {
        return maxSegments;
    }

    public boolean indirectNegotiated() {
        return indirectNegotiated;
    }

    /** Whether requests go out as indirect chains (only possible when negotiated). */
    public void setIndirect(boolean on) {
        if (on && !indirectNegotiated) {
            throw new IllegalStateException("VIRTIO_F_INDIRECT_DESC was not negotiated");
        }
        this.indirect = on;
    }

    public boolean indirect() {
        return indirect;
    }

    /** Where completions go; set before posting. */
    public void onCompletion(Completion c) {
        this.completion = c;
    }

    // ---------------------------------------------------------------- slots

    /** A free slot, or null when every slot is in use. */
    public BlkSlot acquire() {
        return freeCount == 0 ? null : slots[freeSlots[--freeCount]];
    }

    public void release(BlkSlot s) {
        if (s.inFlight) {
            throw new IllegalStateException(s + " is still in flight");
        }
        freeSlots[freeCount++] = s.index;
    }

    public int freeSlots() {
        return freeCount;
    }

    // ---------------------------------------------------------------- posting

    /** A read of {@code bytes} at {@code sector} into the slot's data buffer, in {@code segments} pieces. */
    public void postRead(BlkSlot s, long sector, int bytes, int segments) {
        post(s, T_IN, sector, s.dataGpa, bytes, segments, true);
    }

    /** A write of the first {@code bytes} of the slot's data buffer to {@code sector}. */
    public void postWrite(BlkSlot s, long sector, int bytes, int segments) {
        post(s, T_OUT, sector, s.dataGpa, bytes, segments, false);
    }

    /** FLUSH: header and status only (5.2.6: "sector ... MUST be 0" for the driver). */
    public void postFlush(BlkSlot s) {
        post(s, T_FLUSH, 0, 0, 0, 0, false);
    }

    /** GET_ID: the device writes up to 20 bytes of serial into the data buffer. */
    public void postGetId(BlkSlot s) {
        post(s, T_GET_ID, 0, s.dataGpa, ID_BYTES, 1, true);
    }

    /**
     * DISCARD or WRITE_ZEROES with the first {@code count} segments filled by
     * {@link BlkSlot#setSegment}. The header's sector is 0 (5.2.6: the ranges are in the segments).
     */
    public void postSegments(BlkSlot s, int type, int count) {
        if (count < 1 || count > BlkSlot.MAX_DWZ_SEGMENTS) {
            throw new IllegalArgumentException("segment count " + count);
        }
        post(s, type, 0, s.dwzGpa, count * DWZ_BYTES, 1, false);
    }

    /**
     * Posts any request: header {type, 0, sector} (device-readable), then {@code dataBytes} at
     * {@code dataGpa} split into {@code segments} descriptors (device-writable when
     * {@code dataWritable}), then the status byte (device-writable), as 5.2.6 orders them. The
     * chain goes out indirect when {@link #indirect()}. Not visible until {@link #kick()}.
     */
    public void post(BlkSlot s, int type, long sector, long dataGpa, int dataBytes, int segments,
                     boolean dataWritable) {
        if (s.inFlight) {
            throw new IllegalStateException(s + " is already in flight");
        }
        if (dataBytes > 0 && (segments < 1 || segments > maxSegments || segments > dataBytes)) {
            throw new IllegalArgumentException("cannot split " + dataBytes + " bytes into " + segments
                    + " segments (max " + maxSegments + ")");
        }
        begin(s, type, 0, sector);
        vring.addBuffer(s.hdrGpa, HDR_BYTES, false);
        if (dataBytes > 0) {
            int piece = dataBytes / segments;
            long at = dataGpa;
            for (int i = 0; i < segments; i++) {
                int len = i == segments - 1 ? dataBytes - piece * (segments - 1) : piece;
                vring.addBuffer(at, len, dataWritable);
                at += len;
            }
        }
        vring.addBuffer(s.statusGpa, STATUS_BYTES, true);
        commit(s, s.status, dataBytes);
    }

    /**
     * Starts a request on {@code s} whose chain the caller frames buffer by buffer with
     * {@link #addBuffer}: the slot's header is written ({@code type}, {@code reserved},
     * {@code sector}) but not yet part of the chain. For tests of framings the device must accept
     * (2.7.4.1: header split, status sharing a descriptor with data) and of malformed requests
     * (no header, no status byte). Finish with {@link #commitFramed}.
     */
    public void beginFramed(BlkSlot s, int type, int reserved, long sector) {
        if (s.inFlight) {
            throw new IllegalStateException(s + " is already in flight");
        }
        begin(s, type, reserved, sector);
    }

    /** Appends a buffer to the request begun with {@link #beginFramed}. */
    public void addBuffer(long gpa, int len, boolean deviceWritable) {
        vring.addBuffer(gpa, len, deviceWritable);
    }

    /**
     * Commits the request begun with {@link #beginFramed}; the device's status byte is expected
     * at {@code statusGpa} (preset to {@link BlkSlot#STATUS_UNSET}), or nowhere when it is -1.
     * {@code dataBytes} is what {@link BlkSlot#dataBytes()} reports. Not visible until {@link #kick()}.
     */
    public void commitFramed(BlkSlot s, long statusGpa, int dataBytes) {
        java.lang.foreign.MemorySegment at = null;
        if (statusGpa >= 0) {
            at = statusGpa == s.statusGpa ? s.status : ram.segment(statusGpa, STATUS_BYTES);
            at.set(ValueLayout.JAVA_BYTE, 0, (byte) BlkSlot.STATUS_UNSET);
        }
        commit(s, at, dataBytes);
    }

    private void begin(BlkSlot s, int type, int reserved, long sector) {
        writeHeader(s.hdr, 0, type, reserved, sector);
        s.status.set(ValueLayout.JAVA_BYTE, 0, (byte) BlkSlot.STATUS_UNSET);
        s.type = type;
        s.sector = sector;
        if (indirect) {
            vring.beginIndirectChain(s.tableGpa, s.table, s.tableCapacity);
        } else {
            vring.beginChain();
        }
    }

    private void commit(BlkSlot s, java.lang.foreign.MemorySegment statusAt, int dataBytes) {
        vring.commitChain(s.index);
        s.statusAt = statusAt;
        s.dataBytes = dataBytes;
        s.inFlight = true;
        s.submitNanos = System.nanoTime();
        posted++;
    }

    /**
     * Publishes everything posted and kicks the device through the kick eventfd unless it said it
     * needs none (avail_event with EVENT_IDX, VIRTQ_USED_F_NO_NOTIFY without). Returns whether an
     * eventfd write was made. The eventfd write pairs with the device's kick handler reading it.
     */
    public boolean kick() {
        vring.publish();
        if (vring.kickNeeded()) {
            notifyDevice();
            return true;
        }
        kicksSuppressed++;
        return false;
    }

    /**
     * Writes the kick eventfd whatever the device said it needs (2.7.10: suppression is only a
     * hint the driver may ignore); does not publish. Pairs with the device's kick handler
     * reading the eventfd.
     */
    public void notifyDevice() {
        int r = EventFds.eventfdWrite(kickFd, 1);
        if (r < 0) {
            throw new IllegalStateException("kick eventfd write: " + Errno.name(-r));
        }
        kicks++;
    }

    // ---------------------------------------------------------------- completions

    /** Reaps every used entry, calling the completion for each. Returns how many. */
    public int reap() {
        return vring.reap(onUsed);
    }

    private void onUsed(int token, int len) {
        BlkSlot s = slots[token];
        s.inFlight = false;
        completed++;
        completion.completed(s, s.status(), len);
    }

    /**
     * Waits up to {@code timeoutMs} for the call eventfd and consumes it. Returns the number of
     * device notifications it carried (each eventfd write adds one), 0 on timeout. Pairs with the
     * device's call eventfd write after it published used->idx.
     */
    public long awaitInterrupt(int timeoutMs) {
        if (callFd < 0) {
            throw new IllegalStateException("queue " + index + " polls; it has no call eventfd");
        }
        int r = UnixSockets.poll(callFd, UnixSockets.POLLIN, timeoutMs);
        if (r < 0) {
            throw new IllegalStateException("poll(call eventfd): " + Errno.name(-r));
        }
        if (r == 0) {
            return 0;
        }
        return consumeInterrupts();
    }

    /** Consumes the call eventfd without waiting: the notifications it carried (0 when none). */
    public long consumeInterrupts() {
        if (callFd < 0) {
            return 0;
        }
        long v = EventFds.eventfdRead(callFd);
        if (v == -Errno.EAGAIN) {
            return 0;
        }
        if (v < 0) {
            throw new IllegalStateException("read(call eventfd): " + Errno.name((int) -v));
        }
        wakeups++;
        notifications += v;
        return v;
    }

    /**
     * Reaps until at least {@code n} requests completed (each through the completion callback)
     * or {@code timeoutMs} passed, sleeping on the call eventfd between passes as a guest does
     * (spinning on the used ring for a polling queue). Returns how many were reaped; fewer than
     * {@code n} means the time ran out. For harnesses and tests; the workload loop has its own.
     */
    public int awaitCompletions(int n, long timeoutMs) {
        long end = System.nanoTime() + timeoutMs * 1_000_000L;
        int done = 0;
        while (done < n) {
            int r = reap();
            if (r > 0) {
                done += r;
                continue;
            }
            long left = (end - System.nanoTime()) / 1_000_000L;
            if (left <= 0) {
                break;
            }
            if (callFd < 0) {
                Thread.onSpinWait();
            } else if (enableInterrupts()) {
                awaitInterrupt((int) Math.min(left, 50));
            }
        }
        return done;
    }

    /** See {@link GuestRing#enableInterrupts()}: false when used entries are already waiting. */
    public boolean enableInterrupts() {
        return vring.enableInterrupts();
    }

    public void disableInterrupts() {
        vring.disableInterrupts();
    }

    public int inFlight() {
        return vring.inFlight();
    }

    // ---------------------------------------------------------------- counters

    public long posted() {
        return posted;
    }

    public long completed() {
        return completed;
    }

    /** Kick eventfd writes made. */
    public long kicks() {
        return kicks;
    }

    /** Kicks skipped because the device asked for none. */
    public long kicksSuppressed() {
        return kicksSuppressed;
    }

    /** Times the call eventfd was found signalled. */
    public long wakeups() {
        return wakeups;
    }

    /** Device call eventfd writes consumed (the eventfd counter values summed). */
    public long notifications() {
        return notifications;
    }

    /** Forgets the ring state after the device was reset or the queue stopped (slots must be idle). */
    public void resetRing() {
        vring.reset();
        for (BlkSlot s : slots) {
            s.inFlight = false;
        }
    }

    @Override
    public void close() {
        FileIo.close(kickFd);
        if (callFd >= 0) {
            FileIo.close(callFd);
        }
    }

    @Override
    public String toString() {
        return "GuestBlkQueue[" + index + " " + vring + " posted=" + posted + " completed=" + completed + "]";
    }
}
