package io.vblk.aio.sys;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import static org.assertj.core.api.Assertions.assertThat;

@Timeout(value = 20, unit = TimeUnit.SECONDS)
@SuppressWarnings("restricted")
class SysTest {

    @Test
    void eventfdRoundTripAndEagainAsValue() {
        int fd = EventFds.eventfd(0, EventFds.EFD_NONBLOCK | EventFds.EFD_CLOEXEC);
        assertThat(fd).isGreaterThanOrEqualTo(0);
        try {
            assertThat(EventFds.eventfdRead(fd)).isEqualTo(-Errno.EAGAIN);
            assertThat(EventFds.eventfdWrite(fd, 3)).isZero();
            assertThat(EventFds.eventfdWrite(fd, 4)).isZero();
            assertThat(UnixSockets.poll(fd, UnixSockets.POLLIN, 0) & UnixSockets.POLLIN).isEqualTo(UnixSockets.POLLIN);
            assertThat(EventFds.eventfdRead(fd)).isEqualTo(7);
            assertThat(EventFds.eventfdRead(fd)).isEqualTo(-Errno.EAGAIN);
            assertThat(UnixSockets.poll(fd, UnixSockets.POLLIN, 0)).isZero();
            // 0xffff_ffff_ffff_fffe is the counter's maximum; adding more would block -> EAGAIN.
            assertThat(EventFds.eventfdWrite(fd, 0xffff_ffff_ffff_fffeL)).isZero();
            assertThat(EventFds.eventfdWrite(fd, 1)).isEqualTo(-Errno.EAGAIN);
        } finally {
            assertThat(FileIo.close(fd)).isZero();
        }
    }

    @Test
    void badFdGivesMinusEbadfOnBothBindings() {
        int bad = 987_654;
        assertThat(FileIo.close(bad)).isEqualTo(-Errno.EBADF);            // JNA
        assertThat(FileIo.fdatasync(bad)).isEqualTo(-Errno.EBADF);        // JNA
        assertThat(EventFds.eventfdRead(bad)).isEqualTo(-Errno.EBADF);      // FFM
        assertThat(FileIo.read(bad, 0, 0)).isEqualTo(-Errno.EBADF);       // FFM
        assertThat(FileIo.pwritev(bad, 0, 0, 0)).isEqualTo(-Errno.EBADF); // FFM
        assertThat(FileIo.fileSize(bad)).isEqualTo(-Errno.EBADF);
        assertThat(Errno.name(-Errno.EBADF)).isEqualTo("EBADF");
        assertThat(Errno.name(Errno.EAGAIN)).isEqualTo("EAGAIN");
    }

    @Test
    void memfdMmapSharedMappingsSeeEachOther() {
        int fd = Mmap.memfdCreate("vblk-test", Mmap.MFD_CLOEXEC);
        assertThat(fd).isGreaterThanOrEqualTo(0);
        long len = 1 << 16;
        assertThat(FileIo.ftruncate(fd, len)).isZero();
        assertThat(FileIo.fileSize(fd)).isEqualTo(len);
        long a = Mmap.mmap(0, len, Mmap.PROT_READ | Mmap.PROT_WRITE, Mmap.MAP_SHARED, fd, 0);
        long b = Mmap.mmap(0, len, Mmap.PROT_READ, Mmap.MAP_SHARED, fd, 0);
        assertThat(a).isPositive();
        assertThat(b).isPositive().isNotEqualTo(a);
        MemorySegment wa = MemorySegment.ofAddress(a).reinterpret(len);
        MemorySegment rb = MemorySegment.ofAddress(b).reinterpret(len);
        wa.set(ValueLayout.JAVA_LONG, 4096, 0x1122334455667788L);
        assertThat(rb.get(ValueLayout.JAVA_LONG, 4096)).isEqualTo(0x1122334455667788L);
        // The same bytes through the fd.
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(8, 8);
            assertThat(FileIo.pread(fd, buf.address(), 8, 4096)).isEqualTo(8);
            assertThat(buf.get(ValueLayout.JAVA_LONG, 0)).isEqualTo(0x1122334455667788L);
        }
        assertThat(Mmap.munmap(a, len)).isZero();
        assertThat(Mmap.munmap(b, len)).isZero();
        assertThat(Mmap.mmap(0, len, Mmap.PROT_READ, Mmap.MAP_SHARED, 987_654, 0)).isEqualTo(-Errno.EBADF);
        assertThat(FileIo.close(fd)).isZero();
    }

    @Test
    void socketpairPassesThreeFdsWithData() {
        int[] sv = new int[2];
        assertThat(UnixSockets.socketpair(sv)).isZero();
        int[] sent = {EventFds.eventfd(0, EventFds.EFD_NONBLOCK), EventFds.eventfd(0, EventFds.EFD_NONBLOCK),
                EventFds.eventfd(0, EventFds.EFD_NONBLOCK)};
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(20, 8);
            out.setString(0, "hello vhost", StandardCharsets.US_ASCII);
            assertThat(UnixSockets.sendmsg(sv[0], out.address(), 20, sent, 3)).isEqualTo(20);
            MemorySegment in = arena.allocate(64, 8);
            ReceivedFds rx = new ReceivedFds();
            assertThat(UnixSockets.recvmsg(sv[1], in.address(), 64, rx)).isEqualTo(20);
            assertThat(in.getString(0, StandardCharsets.US_ASCII)).isEqualTo("hello vhost");
            assertThat(rx.count).isEqualTo(3);
            assertThat(rx.truncated).isFalse();
            // Each received fd is the same eventfd as the one sent.
            for (int i = 0; i < 3; i++) {
                assertThat(rx.fds[i]).isNotIn(sent[0], sent[1], sent[2]);
                assertThat(EventFds.eventfdWrite(sent[i], 10 + i)).isZero();
                assertThat(EventFds.eventfdRead(rx.fds[i])).isEqualTo(10 + i);
            }
            rx.closeAll();
            assertThat(rx.count).isZero();
            // Nothing more waiting: EAGAIN as a value on a non-blocking socket.
            assertThat(FileIo.setNonBlocking(sv[1], true)).isZero();
            assertThat(UnixSockets.recvmsg(sv[1], in.address(), 64, rx)).isEqualTo(-Errno.EAGAIN);
        } finally {
            for (int fd : sent) {
                FileIo.close(fd);
            }
            FileIo.close(sv[0]);
            FileIo.close(sv[1]);
        }
    }

    @Test
    void nineFdsArriveAsEightWithTruncatedSet() throws Throwable {
        int[] sv = new int[2];
        assertThat(UnixSockets.socketpair(sv)).isZero();
        int[] many = new int[9];
        for (int i = 0; i < many.length; i++) {
            many[i] = EventFds.eventfd(0, 0);
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buf = arena.allocate(16, 8);
            // UnixSockets.sendmsg refuses more than 8 fds itself.
            assertThat(UnixSockets.sendmsg(sv[0], buf.address(), 4, many, 9)).isEqualTo(-Errno.EINVAL);
            // So send the 9-fd message by hand through the same layout.
            MemorySegment iov = arena.allocate(MsgHdrLayout.IOVEC_BYTES, 8);
            MsgHdrLayout.writeIovec(iov, 0, buf.address(), 4);
            int space = MsgHdrLayout.cmsgSpace(9 * 4);
            MemorySegment control = arena.allocate(space, 8);
            control.set(ValueLayout.JAVA_LONG, MsgHdrLayout.CMSG_LEN_OFF, MsgHdrLayout.cmsgLen(9 * 4));
            control.set(ValueLayout.JAVA_INT, MsgHdrLayout.CMSG_LEVEL, MsgHdrLayout.SOL_SOCKET);
            control.set(ValueLayout.JAVA_INT, MsgHdrLayout.CMSG_TYPE, MsgHdrLayout.SCM_RIGHTS);
            for (int i = 0; i < 9; i++) {
                control.set(ValueLayout.JAVA_INT, MsgHdrLayout.CMSG_DATA + 4L * i, many[i]);
            }
            MemorySegment msg = arena.allocate(MsgHdrLayout.MSGHDR_BYTES, 8);
            MsgHdrLayout.writeMsgHdr(msg, 0, iov.address(), control.address(), space);
            MemorySegment capture = arena.allocate(Downcalls.CAPTURE_LAYOUT);
            long sent = (long) Downcalls.SENDMSG.invokeExact(capture, sv[0], msg.address(), UnixSockets.MSG_NOSIGNAL);
            assertThat(sent).isEqualTo(4);

            ReceivedFds rx = new ReceivedFds();
            assertThat(UnixSockets.recvmsg(sv[1], buf.address(), 16, rx)).isEqualTo(4);
            assertThat(rx.count).isEqualTo(8);
            assertThat(rx.truncated).isTrue();
            rx.closeAll();

            // Exactly 8 fit without truncation.
            assertThat(UnixSockets.sendmsg(sv[0], buf.address(), 4, many, 8)).isEqualTo(4);
            assertThat(UnixSockets.recvmsg(sv[1], buf.address(), 16, rx)).isEqualTo(4);
            assertThat(rx.count).isEqualTo(8);
            assertThat(rx.truncated).isFalse();
            rx.closeAll();
        } finally {
            for (int fd : many) {
                FileIo.close(fd);
            }
            FileIo.close(sv[0]);
            FileIo.close(sv[1]);
        }
    }

    @Test
    void unixListenConnectAccept(@TempDir Path dir) {
        String path = dir.resolve("s.sock").toString();
        int lfd = UnixSockets.unixListen(path, 4);
        assertThat(lfd).isGreaterThanOrEqualTo(0);
        try (Arena arena = Arena.ofConfined()) {
            assertThat(UnixSockets.accept(lfd)).isEqualTo(-Errno.EAGAIN);
            int cfd = UnixSockets.unixConnect(path, true);
            assertThat(cfd).isGreaterThanOrEqualTo(0);
            assertThat(UnixSockets.poll(lfd, UnixSockets.POLLIN, 5000) & UnixSockets.POLLIN).isEqualTo(UnixSockets.POLLIN);
            int afd = UnixSockets.accept(lfd);
            assertThat(afd).isGreaterThanOrEqualTo(0);
            MemorySegment buf = arena.allocate(8, 8);
            buf.set(ValueLayout.JAVA_LONG, 0, 42L);
            assertThat(FileIo.write(cfd, buf.address(), 8)).isEqualTo(8);
            buf.set(ValueLayout.JAVA_LONG, 0, 0L);
            assertThat(FileIo.read(afd, buf.address(), 8)).isEqualTo(8);
            assertThat(buf.get(ValueLayout.JAVA_LONG, 0)).isEqualTo(42L);
            // accepted fd is non-blocking
            assertThat(FileIo.read(afd, buf.address(), 8)).isEqualTo(-Errno.EAGAIN);
            FileIo.close(cfd);
            assertThat(FileIo.read(afd, buf.address(), 8)).isZero(); // end of stream
            long sendToClosed = UnixSockets.sendmsg(afd, buf.address(), 8, null, 0);
            assertThat(sendToClosed).isIn((long) -Errno.EPIPE, (long) -Errno.ECONNRESET);
            FileIo.close(afd);
        } finally {
            FileIo.close(lfd);
        }
        assertThat(UnixSockets.unixConnect(dir.resolve("none.sock").toString(), false)).isEqualTo(-Errno.ENOENT);
        assertThat(UnixSockets.unixListen("x".repeat(200), 1)).isEqualTo(-Errno.ENAMETOOLONG);
    }

    @Test
    void fileCallsAndVectors(@TempDir Path dir) {
        String path = dir.resolve("f.img").toString();
        int fd = FileIo.open(path, FileIo.O_RDWR | FileIo.O_CREAT | FileIo.O_CLOEXEC, 0644);
        assertThat(fd).isGreaterThanOrEqualTo(0);
        assertThat(FileIo.open(dir.resolve("missing").toString(), FileIo.O_RDONLY, 0)).isEqualTo(-Errno.ENOENT);
        try (Arena arena = Arena.ofConfined()) {
            assertThat(FileIo.ftruncate(fd, 1 << 20)).isZero();
            assertThat(FileIo.fileSize(fd)).isEqualTo(1 << 20);
            MemorySegment a = arena.allocate(100, 8);
            MemorySegment b = arena.allocate(28, 8);
            a.fill((byte) 1);
            b.fill((byte) 2);
            MemorySegment iov = arena.allocate(32, 8);
            MsgHdrLayout.writeIovec(iov, 0, a.address(), 100);
            MsgHdrLayout.writeIovec(iov, 16, b.address(), 28);
            assertThat(FileIo.pwritev(fd, iov.address(), 2, 4096)).isEqualTo(128);
            MemorySegment r = arena.allocate(128, 8);
            assertThat(FileIo.pread(fd, r.address(), 128, 4096)).isEqualTo(128);
            assertThat(r.get(ValueLayout.JAVA_BYTE, 99)).isEqualTo((byte) 1);
            assertThat(r.get(ValueLayout.JAVA_BYTE, 100)).isEqualTo((byte) 2);
            a.fill((byte) 0);
            b.fill((byte) 0);
            assertThat(FileIo.preadv(fd, iov.address(), 2, 4096)).isEqualTo(128);
            assertThat(b.get(ValueLayout.JAVA_BYTE, 27)).isEqualTo((byte) 2);
            assertThat(FileIo.fdatasync(fd)).isZero();
            assertThat(FileIo.fsync(fd)).isZero();
            assertThat(FileIo.fallocate(fd, FileIo.FALLOC_FL_PUNCH_HOLE | FileIo.FALLOC_FL_KEEP_SIZE, 0, 8192)).isZero();
            assertThat(FileIo.pread(fd, r.address(), 128, 4096)).isEqualTo(128);
            assertThat(r.get(ValueLayout.JAVA_BYTE, 0)).isZero();
            assertThat(FileIo.fileSize(fd)).isEqualTo(1 << 20);
            assertThat(FileIo.isBlockDevice(fd)).isFalse();
            assertThat(FileIo.logicalBlockSize(fd)).isEqualTo(-Errno.ENOTTY);
            long dio = FileIo.dioAlignment(fd);
            assertThat(dio).isNotNegative(); // 0 where the file system does not report it
            if (dio > 0) { // ext4 on Linux 6.1+: powers of two
                assertThat(Long.bitCount(dio >>> 32)).isEqualTo(1);
                assertThat(Long.bitCount(dio & 0xffffffffL)).isEqualTo(1);
            }
            int dupFd = FileIo.dup(fd);
            assertThat(dupFd).isGreaterThan(fd);
            FileIo.close(dupFd);
        } finally {
            FileIo.close(fd);
        }
        assertThat(FileIo.unlink(path)).isZero();
        assertThat(FileIo.unlink(path)).isEqualTo(-Errno.ENOENT);
    }

    @Test
    void aioContextSetupAndDestroy() {
        long ctx = AioCalls.ioSetup(8);
        assertThat(ctx).isPositive();
        // io_getevents with nothing in flight and a zero timeout returns 0.
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment ts = arena.allocate(16, 8); // struct timespec {0, 0}
            MemorySegment ev = arena.allocate(32 * 4, 8);
            assertThat(AioCalls.ioGetevents(ctx, 0, 4, ev.address(), ts.address())).isZero();
            assertThat(AioCalls.ioSubmit(ctx, 0, 0)).isZero();
        }
        assertThat(AioCalls.ioDestroy(ctx)).isZero();
        assertThat(AioCalls.ioDestroy(ctx)).isEqualTo(-Errno.EINVAL);
        assertThat(AioCalls.ioSubmit(12345, 1, 0)).isEqualTo(-Errno.EINVAL);
    }
}
