package io.vblk.drivers.file;

import io.vblk.aio.AioContext;
import io.vblk.aio.engine.AioMode;
import io.vblk.aio.sys.Errno;
import io.vblk.aio.sys.FileIo;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.BlockDriver;

/**
 * Any thread for the accessors; {@link #openChannel} on the context's home thread.
 *
 * <p>A raw image file or block device, as QEMU's {@code file}/{@code host_device} drivers.
 *
 * <ul>
 *   <li>The engine ({@link AioMode}, chosen in {@link EngineChoice}) is the context's shared
 *       {@link io.vblk.aio.engine.IoEngine} of that kind.</li>
 *   <li>{@code aio=native}: the {@link io.vblk.aio.linuxaio.LinuxAio} engine (io_submit,
 *       completion ring); discard and write-zeroes go to the context's worker pool (there is no
 *       AIO opcode for fallocate).</li>
 *   <li>{@code aio=threads}: the {@link io.vblk.aio.threadpool.WorkerPool} engine, completions
 *       handed back to the home thread by a bottom half.</li>
 *   <li>{@code cache=none}: O_DIRECT. Requests whose buffers, offset or length do not meet the
 *       file's direct-I/O alignment ({@code statx} STATX_DIOALIGN) go through an aligned bounce
 *       buffer; a write whose offset or length is misaligned is a read-modify-write of the covering
 *       blocks, run alone (writes that overlap it in time wait), so no concurrent write's bytes are
 *       overwritten with stale data. The image size must be a multiple of the alignment.</li>
 *   <li>{@code cache=writeback}: the page cache; FLUSH (fdatasync) makes writes durable.</li>
 *   <li>Discard: {@code fallocate(PUNCH_HOLE|KEEP_SIZE)}; a file system without it makes discard
 *       a successful no-op (discard is a hint). Write-zeroes: {@code fallocate(ZERO_RANGE|KEEP_SIZE)}
 *       (PUNCH_HOLE when the request allows unmapping); on EOPNOTSUPP the driver writes zeroes
 *       from then on.</li>
 *   <li>Secure erase: {@code ioctl(BLKSECDISCARD)} on a block device that takes it (a worker's
 *       call), zero writes then fdatasync on a regular file; see {@link #supportsSecureErase}.</li>
 *   <li>Read-only ({@code ro=on}): opened O_RDONLY; WRITE, DISCARD and WRITE_ZEROES complete with
 *       -EROFS; READ and FLUSH work.</li>
 *   <li>A short read (the file shrank underneath) is padded with zeroes; a short write fails with
 *       -ENOSPC, as QEMU's linux-aio does.</li>
 * </ul>
 */
public final class FileDriver implements BlockDriver {
    public enum Cache { NONE, WRITEBACK }

    /** Used when the kernel does not report the direct-I/O alignment: safe for any device. */
    static final int FALLBACK_DIO_ALIGN = 4096;

    private final String path;
    private final int fd;
    /** Written by {@link #resize} (a worker thread, node drained); read per request by the channels. */
    private volatile long length;
    private final boolean readOnly;
    private final AioMode aio;
    private final Cache cache;
    private final int memAlign;
    private final int offAlign;
    private final boolean blockDevice;
    /** A writable block device that takes BLKSECDISCARD (probed at open). */
    private final boolean secureDiscard;
    private volatile boolean zeroRangeUnsupported;
    private volatile boolean closed;

    private FileDriver(String path, int fd, long length, boolean readOnly, AioMode aio, Cache cache, int memAlign,
                       int offAlign, boolean blockDevice) {
        this.path = path;
        this.fd = fd;
        this.length = length;
        this.readOnly = readOnly;
        this.aio = aio;
        this.cache = cache;
        this.memAlign = memAlign;
        this.offAlign = offAlign;
        this.blockDevice = blockDevice;
        this.secureDiscard = blockDevice && !readOnly && FileIo.secureDiscardSupported(fd);
    }

    /**
     * Opens an existing image file or block device. Fails with an {@link IllegalArgumentException}
     * that names the path and the reason (missing file, no permission, no O_DIRECT support, a size
     * cache=none cannot serve, an engine this build does not have).
     */
    public static FileDriver open(String path, AioMode aio, Cache cache, boolean readOnly) {
        EngineChoice.requireAvailable(aio);
        int flags = (readOnly ? FileIo.O_RDONLY : FileIo.O_RDWR) | FileIo.O_CLOEXEC | (cache == Cache.NONE ? FileIo.O_DIRECT : 0);
        int fd = FileIo.open(path, flags, 0);
        if (fd < 0) {
            String hint = fd == -Errno.EINVAL && cache == Cache.NONE
                    ? " (the file system does not support O_DIRECT; use cache=writeback)" : "";
            throw new IllegalArgumentException("file: cannot open '" + path + "'" + (readOnly ? " read-only" : "")
                    + ": " + Errno.name(fd) + hint);
        }
        try {
            long size = FileIo.fileSize(fd);
            if (size < 0) {
                throw new IllegalArgumentException("file: cannot get the size of '" + path + "': " + Errno.name((int) size));
            }
            boolean bdev = FileIo.isBlockDevice(fd);
            int mem = 1;
            int off = 1;
            if (cache == Cache.NONE) {
                long dio = FileIo.dioAlignment(fd);
                if (dio > 0) {
                    mem = (int) (dio >>> 32);
                    off = (int) (dio & 0xffffffffL);
                } else if (bdev && FileIo.logicalBlockSize(fd) > 0) {
                    mem = off = FileIo.logicalBlockSize(fd);
                } else {
                    mem = off = FALLBACK_DIO_ALIGN;
                }
                if (size % off != 0) {
                    throw new IllegalArgumentException("file: cache=none needs a size that is a multiple of the"
                            + " direct-I/O alignment " + off + "; '" + path + "' has " + size + " bytes");
                }
            }
            return new FileDriver(path, fd, size, readOnly, aio, cache, mem, off, bdev);
        } catch (RuntimeException e) {
            FileIo.close(fd);
            throw e;
        }
    }

    @Override
    public String kind() {
        return "file";
    }

    public String path() {
        return path;
    }

    int fd() {
        return fd;
    }

    /**
     * Holes and data of a regular file from {@code lseek(SEEK_DATA / SEEK_HOLE)}, as QEMU's
     * {@code raw_co_block_status}; a block device (or a file system without the seeks) is all data.
     * The answer is exact to the file system's allocation unit: the bytes past the file's end count
     * as a hole.
     */
    @Override
    public long blockStatus(long offset, long length) {
        if (blockDevice || length <= 0) {
            return length;
        }
        long data = FileIo.lseek(fd, offset, FileIo.SEEK_DATA);
        if (data == -io.vblk.aio.sys.Errno.ENXIO) {
            return -length; // no data at or after offset: a hole to the end
        }
        if (data < 0) {
            return length; // EINVAL etc.: the file system cannot tell; data is always right
        }
        if (data > offset) {
            return -Math.min(length, data - offset);
        }
        long hole = FileIo.lseek(fd, offset, FileIo.SEEK_HOLE);
        return hole <= offset ? length : Math.min(length, hole - offset);
    }

    public AioMode aio() {
        return aio;
    }

    public Cache cache() {
        return cache;
    }

    public boolean isBlockDevice() {
        return blockDevice;
    }

    /** A block device's eMMC / UFS estimate from sysfs; a regular file has none (every field undefined). */
    @Override
    public io.vblk.drivers.DeviceLifetime lifetime() {
        if (!blockDevice) {
            return io.vblk.drivers.DeviceLifetime.UNDEFINED;
        }
        try {
            String dev = java.nio.file.Path.of(path).toRealPath().getFileName().toString();
            return io.vblk.drivers.DeviceLifetime.fromSysfs(java.nio.file.Path.of("/sys/class/block", dev));
        } catch (java.io.IOException e) {
            return io.vblk.drivers.DeviceLifetime.UNDEFINED;
        }
    }

    @Override
    public long length() {
        return length;
    }

    /**
     * As QEMU's file-posix {@code raw_co_truncate}: a regular file is ftruncated (with cache=none
     * the new size must be a multiple of the direct-I/O alignment, as {@link #open} requires); a
     * block device cannot grow past what the kernel reports ("Cannot grow device files") and takes
     * the size the kernel reports now (after the volume under it was grown).
     */
    @Override
    public long resize(long newLength) {
        if (closed) {
            throw new IllegalStateException("file: '" + path + "' is closed");
        }
        if (readOnly) {
            throw new IllegalArgumentException("Block node is read-only");
        }
        if (blockDevice) {
            long dev = FileIo.fileSize(fd);
            if (dev < 0) {
                throw new IllegalArgumentException("Failed to get the size of '" + path + "': " + Errno.name((int) dev));
            }
            if (newLength > dev) {
                throw new IllegalArgumentException("Cannot grow device files");
            }
            length = dev;
            return dev;
        }
        if (newLength % offAlign != 0) {
            throw new IllegalArgumentException("file: cache=none needs a size that is a multiple of the direct-I/O"
                    + " alignment " + offAlign + "; " + newLength + " is not");
        }
        int r = FileIo.ftruncate(fd, newLength);
        if (r < 0) {
            throw new IllegalArgumentException("Failed to resize '" + path + "' to " + newLength + " bytes: " + Errno.name(r));
        }
        length = newLength;
        return newLength;
    }

    /**
     * The direct-I/O offset/length alignment with cache=none (1 with cache=writeback). Requests
     * that miss it are still served (bounce buffers, read-modify-write), only slower.
     */
    @Override
    public int alignment() {
        return offAlign;
    }

    /** The direct-I/O buffer address alignment with cache=none (1 with cache=writeback). */
    public int memoryAlignment() {
        return memAlign;
    }

    @Override
    public boolean readOnly() {
        return readOnly;
    }

    @Override
    public boolean supportsDiscard() {
        return true;
    }

    @Override
    public boolean supportsWriteZeroes() {
        return true;
    }

    /**
     * A block device: when it takes BLKSECDISCARD (the kernel's secure erase, which the device
     * itself carries out — eMMC/SD secure trim or erase). A regular file: always, by writing
     * zeroes over the range and fdatasync before completing, so the old bytes are gone from the
     * file as read through any path. Not promised for a regular file: that the file system
     * overwrote the blocks in place (copy-on-write file systems, snapshots, reflinked copies and
     * journals in data mode keep the old bytes elsewhere) or that the medium forgets them (SSD
     * wear levelling keeps old pages until garbage collection). A block device without
     * BLKSECDISCARD: not served (-EOPNOTSUPP; virtio-blk does not offer the command).
     */
    @Override
    public boolean supportsSecureErase() {
        return !readOnly && (!blockDevice || secureDiscard);
    }

    /** SECURE_ERASE runs as BLKSECDISCARD (a block device that takes it) rather than zero writes. */
    boolean secureDiscard() {
        return secureDiscard;
    }

    boolean zeroRangeUnsupported() {
        return zeroRangeUnsupported;
    }

    void markZeroRangeUnsupported() {
        zeroRangeUnsupported = true;
    }

    /** True once ZERO_RANGE failed with EOPNOTSUPP and write-zeroes writes zero buffers instead. */
    public boolean writesZeroes() {
        return zeroRangeUnsupported;
    }

    @Override
    public BlockChannel openChannel(AioContext ctx) {
        if (closed) {
            throw new IllegalStateException("file: '" + path + "' is closed");
        }
        return new FileBlockChannel(ctx, this);
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            FileIo.close(fd);
        }
    }

    @Override
    public String toString() {
        return "file:" + path + ",aio=" + aio.spelling() + ",cache=" + cache.name().toLowerCase()
                + (readOnly ? ",ro=on" : "");
    }
}
