package io.vblk.aio.uring;

import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.EventFds;
import io.vblk.aio.sys.FileIo;
import io.vblk.aio.sys.Mmap;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Home thread: the owning IoThread (of the {@link IoUring} that holds it). No locking.
 *
 * <p>One io_uring instance's kernel side: the ring fd from {@code io_uring_setup(2)} and its three
 * shared areas mapped into this process as {@link MemorySegment}s: the SQ ring (head, tail, mask,
 * flags, the u32 index array), the CQ ring (head, tail, mask, the CQE array) and the SQE array.
 * With IORING_FEAT_SINGLE_MMAP (5.4+) the SQ and CQ rings are one mapping. The ring-field
 * offsets come from the kernel ({@link RingOffsetsLayout}), never from constants.
 */
@SuppressWarnings("restricted") // reinterpret of the kernel's shared ring memory
final class UringQueues {
    final int fd;
    final int features;
    final int setupFlags;
    final int sqEntries;
    final int cqEntries;
    final int sqMask;
    final int cqMask;
    /** SQ ring area (with SINGLE_MMAP also the CQ ring area). */
    final MemorySegment sq;
    /** CQ ring area: the same segment as {@link #sq} with SINGLE_MMAP. */
    final MemorySegment cq;
    final MemorySegment sqes;
    final long sqHead;
    final long sqTail;
    final long sqFlags;
    final long sqDropped;
    final long cqHead;
    final long cqTail;
    final long cqOverflow;
    final long cqes;
    private final long sqMapBytes;
    private final long cqMapBytes;
    private final long sqesMapBytes;
    private boolean closed;

    private UringQueues(int fd, MemorySegment p, MemorySegment sq, MemorySegment cq, MemorySegment sqes,
                        long sqMapBytes, long cqMapBytes, long sqesMapBytes) {
        this.fd = fd;
        this.features = p.get(ValueLayout.JAVA_INT, UringParamsLayout.FEATURES);
        this.setupFlags = p.get(ValueLayout.JAVA_INT, UringParamsLayout.FLAGS);
        this.sqEntries = p.get(ValueLayout.JAVA_INT, UringParamsLayout.SQ_ENTRIES);
        this.cqEntries = p.get(ValueLayout.JAVA_INT, UringParamsLayout.CQ_ENTRIES);
        long so = UringParamsLayout.SQ_OFF;
        long co = UringParamsLayout.CQ_OFF;
        this.sq = sq;
        this.cq = cq;
        this.sqes = sqes;
        this.sqHead = p.get(ValueLayout.JAVA_INT, so + RingOffsetsLayout.HEAD);
        this.sqTail = p.get(ValueLayout.JAVA_INT, so + RingOffsetsLayout.TAIL);
        this.sqFlags = p.get(ValueLayout.JAVA_INT, so + RingOffsetsLayout.SQ_FLAGS);
        this.sqDropped = p.get(ValueLayout.JAVA_INT, so + RingOffsetsLayout.SQ_DROPPED);
        this.cqHead = p.get(ValueLayout.JAVA_INT, co + RingOffsetsLayout.HEAD);
        this.cqTail = p.get(ValueLayout.JAVA_INT, co + RingOffsetsLayout.TAIL);
        this.cqOverflow = p.get(ValueLayout.JAVA_INT, co + RingOffsetsLayout.CQ_OVERFLOW);
        this.cqes = p.get(ValueLayout.JAVA_INT, co + RingOffsetsLayout.CQ_CQES);
        this.sqMask = sq.get(ValueLayout.JAVA_INT, (long) p.get(ValueLayout.JAVA_INT, so + RingOffsetsLayout.RING_MASK));
        this.cqMask = cq.get(ValueLayout.JAVA_INT, (long) p.get(ValueLayout.JAVA_INT, co + RingOffsetsLayout.RING_MASK));
        this.sqMapBytes = sqMapBytes;
        this.cqMapBytes = cqMapBytes;
        this.sqesMapBytes = sqesMapBytes;
        // The index array maps ring position -> SQE index. Identity once, as liburing does since
        // 2.5: the SQE for ring position t is sqes[t & mask], so the array is never written again.
        long array = p.get(ValueLayout.JAVA_INT, so + RingOffsetsLayout.SQ_ARRAY);
        for (int i = 0; i < sqEntries; i++) {
            sq.set(ValueLayout.JAVA_INT, array + 4L * i, i);
        }
    }

    /**
     * Creates an io_uring with {@code entries} SQ entries (rounded up to a power of two by the
     * kernel; the CQ gets twice as many), asking for {@code flags} first and plain flags when this
     * kernel refuses them. Throws IllegalStateException naming the errno and the sysctl that
     * governs io_uring when the kernel has none to give.
     */
    static UringQueues create(int entries, int flags) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = a.allocate(UringParamsLayout.BYTES, 8);
            p.set(ValueLayout.JAVA_INT, UringParamsLayout.FLAGS, flags);
            int fd = UringSyscalls.setup(entries, p.address());
            if (fd == -Errno.EINVAL && flags != UringParamsLayout.IORING_SETUP_CLAMP) {
                // An older kernel than the flags need (SUBMIT_ALL 5.18, SINGLE_ISSUER 6.0).
                p.fill((byte) 0);
                p.set(ValueLayout.JAVA_INT, UringParamsLayout.FLAGS, UringParamsLayout.IORING_SETUP_CLAMP);
                fd = UringSyscalls.setup(entries, p.address());
            }
            if (fd < 0) {
                throw new IllegalStateException("io_uring_setup(" + entries + ") failed: " + Errno.name(fd)
                        + (fd == -Errno.EPERM || fd == -Errno.ENOSYS
                        ? " (io_uring is disabled: see /proc/sys/kernel/io_uring_disabled)" : ""));
            }
            return map(fd, p);
        }
    }

    private static UringQueues map(int fd, MemorySegment p) {
        int sqEntries = p.get(ValueLayout.JAVA_INT, UringParamsLayout.SQ_ENTRIES);
        int cqEntries = p.get(ValueLayout.JAVA_INT, UringParamsLayout.CQ_ENTRIES);
        int features = p.get(ValueLayout.JAVA_INT, UringParamsLayout.FEATURES);
        // Sizes as io_uring_setup(2) gives them: sq_off.array + n * u32, cq_off.cqes + n * cqe.
        long sqBytes = p.get(ValueLayout.JAVA_INT, UringParamsLayout.SQ_OFF + RingOffsetsLayout.SQ_ARRAY)
                + 4L * sqEntries;
        long cqBytes = p.get(ValueLayout.JAVA_INT, UringParamsLayout.CQ_OFF + RingOffsetsLayout.CQ_CQES)
                + (long) CqeLayout.BYTES * cqEntries;
        boolean single = (features & UringParamsLayout.IORING_FEAT_SINGLE_MMAP) != 0;
        if (single) {
            sqBytes = cqBytes = Math.max(sqBytes, cqBytes);
        }
        int prot = Mmap.PROT_READ | Mmap.PROT_WRITE;
        int mflags = Mmap.MAP_SHARED | Mmap.MAP_POPULATE;
        long sqAddr = Mmap.mmap(0, sqBytes, prot, mflags, fd, RingOffsetsLayout.IORING_OFF_SQ_RING);
        if (sqAddr < 0) {
            FileIo.close(fd);
            throw new IllegalStateException("mmap of the io_uring SQ ring failed: " + Errno.name((int) sqAddr));
        }
        long cqAddr = sqAddr;
        if (!single) {
            cqAddr = Mmap.mmap(0, cqBytes, prot, mflags, fd, RingOffsetsLayout.IORING_OFF_CQ_RING);
            if (cqAddr < 0) {
                Mmap.munmap(sqAddr, sqBytes);
                FileIo.close(fd);
                throw new IllegalStateException("mmap of the io_uring CQ ring failed: " + Errno.name((int) cqAddr));
            }
        }
        long sqesBytes = (long) SqeLayout.BYTES * sqEntries;
        long sqesAddr = Mmap.mmap(0, sqesBytes, prot, mflags, fd, RingOffsetsLayout.IORING_OFF_SQES);
        if (sqesAddr < 0) {
            Mmap.munmap(sqAddr, sqBytes);
            if (!single) {
                Mmap.munmap(cqAddr, cqBytes);
            }
            FileIo.close(fd);
            throw new IllegalStateException("mmap of the io_uring SQE array failed: " + Errno.name((int) sqesAddr));
        }
        MemorySegment sq = MemorySegment.ofAddress(sqAddr).reinterpret(sqBytes);
        MemorySegment cq = single ? sq : MemorySegment.ofAddress(cqAddr).reinterpret(cqBytes);
        MemorySegment sqes = MemorySegment.ofAddress(sqesAddr).reinterpret(sqesBytes);
        return new UringQueues(fd, p, sq, cq, sqes, sqBytes, single ? 0 : cqBytes, sqesBytes);
    }

    /**
     * A new non-blocking eventfd that the kernel signals whenever it posts CQEs
     * (IORING_REGISTER_EVENTFD); throws IllegalStateException naming the errno.
     */
    int registerEventfd() {
        int efd = EventFds.eventfd(0, EventFds.EFD_NONBLOCK | EventFds.EFD_CLOEXEC);
        if (efd < 0) {
            throw new IllegalStateException("eventfd for io_uring completions failed: " + Errno.name(efd));
        }
        try (Arena a = Arena.ofConfined()) {
            MemorySegment arg = a.allocate(4, 4); // the __s32 eventfd, nr_args = 1
            arg.set(ValueLayout.JAVA_INT, 0, efd);
            int r = UringSyscalls.register(fd, UringSyscalls.IORING_REGISTER_EVENTFD, arg.address(), 1);
            if (r < 0) {
                FileIo.close(efd);
                throw new IllegalStateException("IORING_REGISTER_EVENTFD failed: " + Errno.name(r));
            }
        }
        return efd;
    }

    boolean singleMmap() {
        return (features & UringParamsLayout.IORING_FEAT_SINGLE_MMAP) != 0;
    }

    /** Unmaps the areas and closes the ring fd; the kernel cancels whatever is still in flight. */
    void close() {
        if (closed) {
            return;
        }
        closed = true;
        Mmap.munmap(sqes.address(), sqesMapBytes);
        if (cqMapBytes > 0) {
            Mmap.munmap(cq.address(), cqMapBytes);
        }
        Mmap.munmap(sq.address(), sqMapBytes);
        FileIo.close(fd);
    }
}
