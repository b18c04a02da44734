package io.vblk.aio.sys;

/**
 * Home thread: whoever owns it (a vhost-user connection's home thread). No locking.
 *
 * <p>File descriptors that arrived with one {@link UnixSockets#recvmsg} call (SCM_RIGHTS). Reused by its
 * owner across calls: {@link UnixSockets#recvmsg} overwrites it each time. The descriptors belong to the
 * caller from then on (they were received with close-on-exec set), including when
 * {@link #truncated} is true.
 */
public final class ReceivedFds {
    /**
     * Room for the fds of one message. 8 is VHOST_MEMORY_BASELINE_NREGIONS, the most fds one
     * vhost-user message carries (SET_MEM_TABLE).
     */
    public static final int MAX_FDS = 8;

    public final int[] fds = new int[MAX_FDS];
    /** How many entries of {@link #fds} are valid. */
    public int count;
    /** The kernel set MSG_CTRUNC: the sender attached more fds than {@link #MAX_FDS}; the rest are lost. */
    public boolean truncated;

    public void clear() {
        count = 0;
        truncated = false;
    }

    /** Closes every received fd and clears; for error paths that reject the message. */
    public void closeAll() {
        for (int i = 0; i < count; i++) {
            FileIo.close(fds[i]);
        }
        clear();
    }
}
