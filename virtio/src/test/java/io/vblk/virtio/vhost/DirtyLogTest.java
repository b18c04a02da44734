package io.vblk.virtio.vhost;

import io.vblk.aio.AioContext;
import io.vblk.aio.sys.FileIo;
import io.vblk.aio.sys.Mmap;
import io.vblk.guest.BlkWireLayout;
import io.vblk.guest.GuestRam;
import io.vblk.guest.GuestVring;
import io.vblk.guest.vhost.VhostUserFrontend;
import io.vblk.virtio.blk.BlkDevice;
import io.vblk.virtio.vhost.wire.VhostUserProtocolFeature;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Dirty logging for live migration, over the real socket with vblk's own front-end in QEMU's role:
 * SET_LOG_BASE with a memfd log, SET_FEATURES with VHOST_F_LOG_ALL, SET_VRING_ADDR with
 * VHOST_VRING_F_LOG. While logging, every guest page the back-end wrote — a read's data, GET_ID's
 * data, status bytes, the used ring — is marked in the bitmap, and a page it only read (a write's
 * data) is not; logging switched on and off while requests run loses no request, completes none
 * twice, and marks the pages of every request completed while it was on.
 */
@Timeout(value = 90, unit = TimeUnit.SECONDS)
class DirtyLogTest {
    private static final Duration T = Duration.ofSeconds(20);
    private static final ValueLayout.OfInt LE32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong LE64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final long LOG_BYTES = 4096;

    @TempDir
    Path dir;
    private VhostRig rig;
    private BlkDevice device;
    private GuestRam ram;
    private int logFd = -1;
    private long logMap;
    private MemorySegment bitmap;

    @BeforeEach
    void setUp() throws Exception {
        Path img = VhostRig.image(dir, 16 << 20);
        rig = new VhostRig(dir);
        device = rig.serve("file:" + img + ",aio=threads,cache=writeback", 1, 1).device();
        ram = GuestRam.memfd("guest", GuestRam.DEFAULT_GPA_BASE, 8 << 20);
        logFd = Mmap.memfdCreate("dirty-log", Mmap.MFD_CLOEXEC);
        assertThat(logFd).isNotNegative();
        assertThat(FileIo.ftruncate(logFd, LOG_BYTES)).isZero();
        logMap = Mmap.mmap(0, LOG_BYTES, Mmap.PROT_READ | Mmap.PROT_WRITE, Mmap.MAP_SHARED, logFd, 0);
        assertThat(logMap).isPositive();
        bitmap = MemorySegment.ofAddress(logMap).reinterpret(LOG_BYTES);
    }

    @AfterEach
    void tearDown() {
        if (rig != null) {
            rig.close();
        }
        if (ram != null) {
            ram.close();
        }
        if (logMap > 0) {
            Mmap.munmap(logMap, LOG_BYTES);
        }
        if (logFd >= 0) {
            FileIo.close(logFd);
        }
    }

    @Test
    void everyPageTheBackendWritesIsMarkedAndOnlyThoseWhileLogging() throws Exception {
        GuestVring vring = GuestVring.allocate(ram, 64);
        VhostUserFrontend f = connect();
        assertThat(f.protocolFeatures() & VhostUserProtocolFeature.bit(VhostUserProtocolFeature.LOG_SHMFD)).isNotZero();
        assertThat(f.backendFeatures() & VhostUserProtocolFeature.bit(VhostUserProtocolFeature.F_LOG_ALL)).isNotZero();
        start(f, vring);

        // Before logging: requests complete, nothing is marked.
        List<Req> before = postMixed(vring, 0);
        complete(f, vring, before);
        assertThat(dirtyPages()).isEmpty();

        onFe(() -> f.migration().startDirtyLog(logFd, LOG_BYTES));
        clearLog(); // what QEMU does after its first sync; the queue's restart wrote to the used ring
        List<Req> during = postMixed(vring, 100);
        complete(f, vring, during);
        Set<Long> expected = new TreeSet<>();
        Set<Long> readOnly = new TreeSet<>();
        for (Req r : during) {
            expected.addAll(pages(r.status, 1));
            if (r.type == BlkWireLayout.T_IN || r.type == BlkWireLayout.T_GET_ID) {
                expected.addAll(pages(r.data, r.len));
            } else {
                readOnly.addAll(pages(r.data, r.len));
            }
        }
        // The used ring: the elements written and the index (VHOST_VRING_F_LOG at the ring's address).
        expected.addAll(pages(vring.usedGpa() + 2, 2));
        // The used ring is marked right after the index store the guest polls: wait (bounded) for it.
        Set<Long> dirty = awaitMarked(expected);
        assertThat(dirty).as("pages written by reads, GET_ID, status bytes and the used ring").containsAll(expected);
        readOnly.removeAll(expected);
        assertThat(readOnly).as("pages the back-end only read (write data)").isNotEmpty();
        assertThat(dirty).as("pages the back-end only read").doesNotContainAnyElementsOf(readOnly);
        // Nothing outside what the requests and the rings touched.
        Set<Long> allowed = new HashSet<>(expected);
        allowed.addAll(pages(vring.usedGpa(), 6 + 8L * vring.size()));
        assertThat(dirty).as("no page outside the requests' writes and the used ring").isSubsetOf(allowed);

        // Logging off: requests go on, nothing more is marked.
        onFe(f.migration()::stopDirtyLog);
        clearLog();
        List<Req> after = postMixed(vring, 200);
        complete(f, vring, after);
        assertThat(dirtyPages()).as("after LOG_ALL cleared").isEmpty();
        assertThat(AioContext.await(rig.control().callOn(device::needsReset), T)).isFalse();
        onFe(() -> {
            f.close();
            return CompletableFuture.completedFuture(null);
        });
    }

    @Test
    void loggingSwitchedOnAndOffUnderLoadLosesNothingAndMarksEveryCompletionWhileOn() throws Exception {
        GuestVring vring = GuestVring.allocate(ram, 128);
        VhostUserFrontend f = connect();
        start(f, vring);
        int slots = 32;
        long[] hdr = new long[slots];
        long[] data = new long[slots];
        long[] status = new long[slots];
        for (int i = 0; i < slots; i++) {
            hdr[i] = ram.allocate(16, 16);
            data[i] = ram.allocate(4096, 4096);
            status[i] = ram.allocate(1, 1);
        }
        ArrayDeque<Integer> free = new ArrayDeque<>();
        for (int i = 0; i < slots; i++) {
            free.add(i);
        }
        int total = 4000;
        int posted = 0;
        int[] done = {0};
        boolean[] seen = new boolean[total];
        int[] requestOf = new int[slots];
        List<Integer> completedWhileOn = new ArrayList<>();
        int[] reaped = {0};
        // Used-ring position from which elements were pushed by a queue started with logging on
        // (-1: off). Elements pushed while the start was being processed came from the old queue.
        int[] onFrom = {-1};
        boolean on = false;
        int switches = 0;
        int checkedOn = 0;
        long end = System.nanoTime() + T.toNanos() * 3;
        while (done[0] < total) {
            assertThat(System.nanoTime()).as("%d of %d completed", done[0], total).isLessThan(end);
            boolean any = false;
            while (posted < total && !free.isEmpty()) {
                int s = free.poll();
                requestOf[s] = posted;
                MemorySegment h = ram.segment(hdr[s], 16);
                h.set(LE32, BlkWireLayout.HDR_TYPE, BlkWireLayout.T_IN);
                h.set(LE32, BlkWireLayout.HDR_RESERVED, 0);
                h.set(LE64, BlkWireLayout.HDR_SECTOR, (posted % 2000) * 8L);
                vring.beginChain();
                vring.addBuffer(hdr[s], 16, false);
                vring.addBuffer(data[s], 4096, true);
                vring.addBuffer(status[s], 1, true);
                vring.commitChain(s);
                posted++;
                any = true;
            }
            if (any) {
                vring.publish();
                kick(f);
            }
            int before = done[0];
            vring.reap((token, len) -> {
                int req = requestOf[token];
                assertThat(seen[req]).as("request %d completed twice", req).isFalse();
                seen[req] = true;
                if (onFrom[0] >= 0 && reaped[0] >= onFrom[0]) {
                    completedWhileOn.add(token);
                }
                reaped[0]++;
                free.add(token);
                done[0]++;
            });
            if (done[0] / 200 != before / 200) {
                if (!on) {
                    clearLog();
                    onFe(() -> f.migration().startDirtyLog(logFd, LOG_BYTES));
                    onFrom[0] = reaped[0] + ((vring.usedIdx() - reaped[0]) & 0xffff);
                    on = true;
                } else {
                    // Reaped while on (after the start was acknowledged): their pages are marked.
                    Set<Long> dirty = dirtyPages();
                    for (int s : completedWhileOn) {
                        assertThat(dirty).as("slot %d's data and status pages", s)
                                .containsAll(pages(data[s], 4096)).containsAll(pages(status[s], 1));
                        checkedOn++;
                    }
                    completedWhileOn.clear();
                    onFrom[0] = -1;
                    onFe(f.migration()::stopDirtyLog);
                    on = false;
                }
                switches++;
            }
        }
        for (int i = 0; i < total; i++) {
            assertThat(seen[i]).as("request %d completed", i).isTrue();
        }
        assertThat(switches).isGreaterThanOrEqualTo(15);
        assertThat(checkedOn).isGreaterThan(500);
        assertThat(AioContext.await(rig.control().callOn(() -> device.queueStarted(0)), T)).isTrue();
        assertThat(AioContext.await(rig.control().callOn(device::needsReset), T)).isFalse();
        onFe(() -> {
            f.close();
            return CompletableFuture.completedFuture(null);
        });
    }

    // ---------------------------------------------------------------- helpers

    private record Req(int token, int type, long data, long len, long status) {
    }

    /**
     * Posts, per call: reads with data on one page, a read spanning two pages, a write, a GET_ID; each
     * status byte on a page of its own. Tokens from {@code base}.
     */
    private List<Req> postMixed(GuestVring vring, int base) {
        List<Req> out = new ArrayList<>();
        out.add(post(vring, base, BlkWireLayout.T_IN, 4096, 0));
        out.add(post(vring, base + 1, BlkWireLayout.T_IN, 8192, 2048)); // starts mid-page: spans 3 pages
        out.add(post(vring, base + 2, BlkWireLayout.T_OUT, 4096, 0));
        out.add(post(vring, base + 3, BlkWireLayout.T_GET_ID, BlkWireLayout.ID_BYTES, 0));
        out.add(post(vring, base + 4, BlkWireLayout.T_IN, 512, 4000)); // crosses a page boundary
        vring.publish();
        return out;
    }

    private Req post(GuestVring vring, int token, int type, int len, int skew) {
        long hdr = ram.allocate(16, 4096);
        long data = ram.allocate(len + skew + 4096L, 4096) + skew;
        long status = ram.allocate(1, 4096);
        MemorySegment h = ram.segment(hdr, 16);
        h.set(LE32, BlkWireLayout.HDR_TYPE, type);
        h.set(LE32, BlkWireLayout.HDR_RESERVED, 0);
        h.set(LE64, BlkWireLayout.HDR_SECTOR, token * 16L);
        ram.segment(data, len).fill((byte) 0x5a);
        vring.beginChain();
        vring.addBuffer(hdr, 16, false);
        vring.addBuffer(data, len, type != BlkWireLayout.T_OUT);
        vring.addBuffer(status, 1, true);
        vring.commitChain(token);
        return new Req(token, type, data, len, status);
    }

    private void complete(VhostUserFrontend f, GuestVring vring, List<Req> reqs) {
        kick(f);
        Set<Integer> want = new HashSet<>();
        for (Req r : reqs) {
            want.add(r.token);
        }
        long end = System.nanoTime() + T.toNanos();
        while (!want.isEmpty()) {
            assertThat(System.nanoTime()).as("waiting for %s", want).isLessThan(end);
            vring.reap((token, len) -> assertThat(want.remove(token)).as("token %d", token).isTrue());
            Thread.onSpinWait();
        }
        for (Req r : reqs) {
            assertThat(ram.segment(r.status, 1).get(ValueLayout.JAVA_BYTE, 0)).as("status of %s", r)
                    .isEqualTo((byte) BlkWireLayout.S_OK);
        }
    }

    private static Set<Long> pages(long gpa, long len) {
        Set<Long> s = new TreeSet<>();
        for (long p = gpa >>> 12; p <= (gpa + len - 1) >>> 12; p++) {
            s.add(p);
        }
        return s;
    }

    /** The pages marked in the log (bit p of u64 word p / 64, vhost's layout). */
    private Set<Long> dirtyPages() {
        Set<Long> s = new TreeSet<>();
        for (long w = 0; w < LOG_BYTES / 8; w++) {
            long v = bitmap.get(ValueLayout.JAVA_LONG, w * 8);
            for (int b = 0; b < 64; b++) {
                if ((v & (1L << b)) != 0) {
                    s.add(w * 64 + b);
                }
            }
        }
        return s;
    }

    /** Waits (bounded) until every page of {@code expected} is marked; returns the marked pages. */
    private Set<Long> awaitMarked(Set<Long> expected) {
        long end = System.nanoTime() + T.toNanos();
        Set<Long> dirty = dirtyPages();
        while (!dirty.containsAll(expected) && System.nanoTime() < end) {
            Thread.onSpinWait();
            dirty = dirtyPages();
        }
        return dirty;
    }

    private void clearLog() {
        bitmap.fill((byte) 0);
    }

    private VhostUserFrontend connect() {
        return rig.connect(dir.resolve("vblk.sock").toString());
    }

    private void start(VhostUserFrontend f, GuestVring vring) {
        rig.start(f, ram, vring.layout(), 1L << 32, 0);
    }

    /** Runs {@code op} on the front-end's thread and waits (bounded) for the future it returns. */
    private void onFe(java.util.concurrent.Callable<CompletableFuture<Void>> op) {
        rig.awaitOnFe(op);
    }

    private void kick(VhostUserFrontend f) {
        rig.kick(f);
    }
}
