package io.vblk.drivers;

/**
 * Any thread for the accessors, as {@link BlockDriver}.
 *
 * <p>A driver that wraps another and forwards every image-wide fact and {@link #close()} to it;
 * subclasses put their own channel in front of the inner one ({@link #openChannel}).
 */
public abstract class ForwardingBlockDriver implements BlockDriver {
    protected final BlockDriver inner;

    protected ForwardingBlockDriver(BlockDriver inner) {
        this.inner = inner;
    }

    public BlockDriver inner() {
        return inner;
    }

    @Override
    public String kind() {
        return inner.kind();
    }

    @Override
    public long length() {
        return inner.length();
    }

    @Override
    public long resize(long newLength) {
        return inner.resize(newLength);
    }

    @Override
    public int alignment() {
        return inner.alignment();
    }

    @Override
    public boolean readOnly() {
        return inner.readOnly();
    }

    @Override
    public boolean supportsDiscard() {
        return inner.supportsDiscard();
    }

    @Override
    public boolean supportsWriteZeroes() {
        return inner.supportsWriteZeroes();
    }

    @Override
    public boolean supportsSecureErase() {
        return inner.supportsSecureErase();
    }

    @Override
    public int maxBatch() {
        return inner.maxBatch();
    }

    @Override
    public void close() {
        inner.close();
    }
}
