package io.vblk.drivers.nullblk;

import io.vblk.aio.AioContext;
import io.vblk.drivers.BlockChannel;
import io.vblk.drivers.BlockDriver;

/**
 * Any thread for the accessors; {@link #openChannel} on the context's home thread.
 *
 * <p>The null device, for benchmarks and tests, as QEMU's {@code null-co} / {@code null-aio}: reads
 * return zeroes (the buffers are filled) or, with {@code readZeroes} off (null-co's default
 * {@code read-zeroes=off}), leave the buffers untouched; writes are accepted and forgotten, flush,
 * discard and write-zeroes succeed. With {@code readOnly} the writing operations complete with
 * -EROFS.
 *
 * <p>Both completion modes go through the one {@link io.vblk.aio.engine.SubmissionQueue} (a
 * {@link NullEngine} behind it). {@link Completion#SYNC} completes requests on the submitting call
 * stack, through the same deferred, batched submission as the Linux AIO engine — so seed 000's
 * cycle (submit → completions in the same frame → callback submits → defer-call end → submit)
 * exists here and is bounded by the same {@link io.vblk.aio.engine.SubmitGuard}.
 * {@link Completion#ASYNC} completes each request from a bottom half on the next loop iteration.
 */
public final class NullDriver implements BlockDriver {
    /** When requests complete. */
    public enum Completion { SYNC, ASYNC }

    /** Written by {@link #resize} (a worker thread, node drained); read per request by the channels. */
    private volatile long size;
    private final Completion completion;
    private final int maxBatch;
    private final boolean readOnly;
    private final boolean readZeroes;

    public NullDriver(long size, Completion completion, int maxBatch, boolean readOnly) {
        this(size, completion, maxBatch, readOnly, true);
    }

    /**
     * @param readZeroes true: reads fill their buffers with zeroes; false: reads complete without
     *                   touching guest memory (QEMU null-co {@code read-zeroes=off}, its default)
     */
    public NullDriver(long size, Completion completion, int maxBatch, boolean readOnly, boolean readZeroes) {
        if (size < 0) {
            throw new IllegalArgumentException("null: size must be >= 0, got " + size);
        }
        if (maxBatch < 1) {
            throw new IllegalArgumentException("null: max-batch must be >= 1, got " + maxBatch);
        }
        this.size = size;
        this.completion = completion;
        this.maxBatch = maxBatch;
        this.readOnly = readOnly;
        this.readZeroes = readZeroes;
    }

    public NullDriver(long size, Completion completion) {
        this(size, completion, 32, false);
    }

    /** Whether reads fill their buffers with zeroes. */
    public boolean readZeroes() {
        return readZeroes;
    }

    public Completion completion() {
        return completion;
    }

    @Override
    public String kind() {
        return "null";
    }

    @Override
    public long length() {
        return size;
    }

    /** The null device takes any size (QEMU's null-co keeps its {@code size} option likewise). */
    @Override
    public long resize(long newLength) {
        if (newLength < 0) {
            throw new IllegalArgumentException("null: size must be >= 0, got " + newLength);
        }
        size = newLength;
        return newLength;
    }

    @Override
    public int alignment() {
        return 1;
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

    @Override
    public int maxBatch() {
        return maxBatch;
    }

    /** A {@link NullChannel} completing as {@link #completion()} says. Home thread of {@code ctx}. */
    @Override
    public BlockChannel openChannel(AioContext ctx) {
        return new NullChannel(ctx, this);
    }

    @Override
    public void close() {
    }

    @Override
    public String toString() {
        return "null:size=" + size + ",completion=" + completion.name().toLowerCase() + (readOnly ? ",ro=on" : "")
                + (readZeroes ? "" : ",read-zeroes=off");
    }
}
