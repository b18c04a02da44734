package io.vblk.drivers.nbd;

import io.vblk.drivers.nullblk.NullDriver;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;

import static io.vblk.drivers.nbd.NbdProtocol.*;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * Malformed and hostile NBD input against vblk's export, written byte by byte by a raw client: each
 * gets NBD's error reply or a closed connection, and the server keeps serving (a well-behaved
 * client negotiates and reads afterwards).
 */
@Timeout(60)
class NbdExportBadInputTest {
    private static final long SIZE = 1 << 20;

    @TempDir
    Path dir;
    private NbdFixture server;

    @BeforeEach
    void start() {
        server = new NbdFixture(dir, new NullDriver(SIZE, NullDriver.Completion.ASYNC), "disk", true);
    }

    @AfterEach
    void stop() {
        server.close();
    }

    /** A raw client: blocking reads with a bound (the test's timeout). */
    private final class Raw implements AutoCloseable {
        final SocketChannel ch;

        Raw() throws IOException {
            ch = SocketChannel.open(UnixDomainSocketAddress.of(server.socket));
        }

        ByteBuffer read(int n) throws IOException {
            ByteBuffer b = ByteBuffer.allocate(n);
            while (b.hasRemaining()) {
                if (ch.read(b) < 0) {
                    throw new IOException("closed after " + b.position() + " of " + n + " bytes");
                }
            }
            return b.flip();
        }

        /** True when the server closed the connection (end of stream before any byte). */
        boolean closedByServer() throws IOException {
            ByteBuffer b = ByteBuffer.allocate(1);
            try {
                return ch.read(b) < 0;
            } catch (IOException e) {
                return true; // ECONNRESET: closed with our data unread
            }
        }

        void write(ByteBuffer b) throws IOException {
            while (b.hasRemaining()) {
                ch.write(b);
            }
        }

        /** Greeting, client flags. */
        Raw greet(int clientFlags) throws IOException {
            ByteBuffer g = read(18);
            assertThat(g.getLong()).isEqualTo(NBDMAGIC);
            assertThat(g.getLong()).isEqualTo(IHAVEOPT);
            assertThat(g.getShort() & 0xffff).isEqualTo(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
            write(ByteBuffer.allocate(4).putInt(clientFlags).flip());
            return this;
        }

        void option(int opt, byte[] data) throws IOException {
            write(ByteBuffer.allocate(16 + data.length).putLong(IHAVEOPT).putInt(opt).putInt(data.length).put(data).flip());
        }

        /** One option reply: its type (the data is skipped). */
        int optionReply(int opt) throws IOException {
            ByteBuffer h = read(20);
            assertThat(h.getLong()).isEqualTo(REPLY_MAGIC);
            assertThat(h.getInt()).isEqualTo(opt);
            int type = h.getInt();
            int len = h.getInt();
            read(len);
            return type;
        }

        /** NBD_OPT_GO for {@code name}; reads the replies to the ACK. */
        Raw go(String name) throws IOException {
            byte[] n = name.getBytes(StandardCharsets.UTF_8);
            option(OPT_GO, ByteBuffer.allocate(6 + n.length).putInt(n.length).put(n).putShort((short) 0).array());
            int t;
            while ((t = optionReply(OPT_GO)) == REP_INFO) {
                // export and block-size information
            }
            assertThat(t).isEqualTo(REP_ACK);
            return this;
        }

        void request(int type, int flags, long cookie, long offset, int length) throws IOException {
            write(ByteBuffer.allocate(28).putInt(REQUEST_MAGIC).putShort((short) flags).putShort((short) type)
                    .putLong(cookie).putLong(offset).putInt(length).flip());
        }

        /** A simple reply: its error, after checking the cookie. */
        int simpleReply(long cookie) throws IOException {
            ByteBuffer r = read(16);
            assertThat(r.getInt()).isEqualTo(SIMPLE_REPLY_MAGIC);
            int error = r.getInt();
            assertThat(r.getLong()).isEqualTo(cookie);
            return error;
        }

        @Override
        public void close() throws IOException {
            ch.close();
        }
    }

    /** A well-behaved client still gets served: negotiation, a 4 KiB read and its data. */
    private void serverStillServes() throws IOException {
        try (Raw r = new Raw().greet(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES).go("disk")) {
            r.request(CMD_READ, 0, 42, 0, 4096);
            assertThat(r.simpleReply(42)).isZero();
            assertThat(r.read(4096).remaining()).isEqualTo(4096);
            r.request(CMD_DISC, 0, 43, 0, 0);
        }
    }

    @Test
    void unknownClientFlagsCloseTheConnection() throws IOException {
        try (Raw r = new Raw().greet(0x80)) {
            assertThat(r.closedByServer()).isTrue();
        }
        serverStillServes();
    }

    @Test
    void badOptionMagicClosesTheConnection() throws IOException {
        try (Raw r = new Raw().greet(FLAG_C_FIXED_NEWSTYLE)) {
            r.write(ByteBuffer.allocate(16).putLong(0x1234567812345678L).putInt(OPT_GO).putInt(0).flip());
            assertThat(r.closedByServer()).isTrue();
        }
        serverStillServes();
    }

    @Test
    void unknownAndOversizedOptionsGetErrorReplies() throws IOException {
        try (Raw r = new Raw().greet(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES)) {
            r.option(99, new byte[] {1, 2, 3});
            assertThat(r.optionReply(99)).isEqualTo(REP_ERR_UNSUP);
            r.option(OPT_STARTTLS, new byte[0]);
            assertThat(r.optionReply(OPT_STARTTLS)).isEqualTo(REP_ERR_UNSUP);
            r.option(OPT_INFO, new byte[] {0, 0, 0, 9}); // name length past the data
            assertThat(r.optionReply(OPT_INFO)).isEqualTo(REP_ERR_INVALID);
            r.option(OPT_LIST, new byte[] {1});
            assertThat(r.optionReply(OPT_LIST)).isEqualTo(REP_ERR_INVALID);
            r.option(OPT_SET_META_CONTEXT, new byte[100 * 1024]); // longer than the server reads
            assertThat(r.optionReply(OPT_SET_META_CONTEXT)).isEqualTo(REP_ERR_TOO_BIG);
            byte[] n = "nosuch".getBytes(StandardCharsets.UTF_8);
            r.option(OPT_GO, ByteBuffer.allocate(6 + n.length).putInt(n.length).put(n).putShort((short) 0).array());
            assertThat(r.optionReply(OPT_GO)).isEqualTo(REP_ERR_UNKNOWN);
            r.option(OPT_STRUCTURED_REPLY, new byte[0]);
            assertThat(r.optionReply(OPT_STRUCTURED_REPLY)).isEqualTo(REP_ACK);
            r.option(OPT_ABORT, new byte[0]);
            assertThat(r.optionReply(OPT_ABORT)).isEqualTo(REP_ACK);
            assertThat(r.closedByServer()).isTrue();
        }
        serverStillServes();
    }

    @Test
    void badRequestsGetNbdErrors() throws IOException {
        try (Raw r = new Raw().greet(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES).go("disk")) {
            r.request(CMD_READ, 0, 1, SIZE - 512, 4096); // past the end
            assertThat(r.simpleReply(1)).isEqualTo(EINVAL);
            r.request(CMD_READ, 0, 2, 0, 64 << 20); // larger than the 32 MiB the server offers
            assertThat(r.simpleReply(2)).isEqualTo(EOVERFLOW);
            r.request(CMD_WRITE, 0, 3, SIZE, 512); // past the end: the payload is read and dropped
            r.write(ByteBuffer.allocate(512));
            assertThat(r.simpleReply(3)).isEqualTo(ENOSPC);
            r.request(CMD_WRITE, 0, 4, 0, (33 << 20)); // oversized: 33 MiB of payload dropped
            ByteBuffer chunk = ByteBuffer.allocate(1 << 20);
            for (int i = 0; i < 33; i++) {
                r.write(chunk.clear());
            }
            assertThat(r.simpleReply(4)).isEqualTo(EOVERFLOW);
            r.request(77, 0, 5, 0, 0); // unknown command
            assertThat(r.simpleReply(5)).isEqualTo(EINVAL);
            r.request(CMD_WRITE, CMD_FLAG_FUA, 6, 4096, 4096); // and a good one still works
            r.write(ByteBuffer.allocate(4096));
            assertThat(r.simpleReply(6)).isZero();
            r.request(CMD_FLUSH, 0, 7, 0, 0);
            assertThat(r.simpleReply(7)).isZero();
            // A bad request magic cannot be re-synchronised: the connection closes.
            r.write(ByteBuffer.allocate(28).putInt(0, 0xdeadbeef));
            assertThat(r.closedByServer()).isTrue();
        }
        serverStillServes();
    }

    @Test
    void structuredReadRepliesAndErrors() throws IOException {
        try (Raw r = new Raw().greet(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES)) {
            r.option(OPT_STRUCTURED_REPLY, new byte[0]);
            assertThat(r.optionReply(OPT_STRUCTURED_REPLY)).isEqualTo(REP_ACK);
            r.go("disk");
            r.request(CMD_READ, 0, 9, 8192, 1024);
            ByteBuffer c = r.read(20);
            assertThat(c.getInt()).isEqualTo(STRUCTURED_REPLY_MAGIC);
            assertThat(c.getShort() & 0xffff).isEqualTo(REPLY_FLAG_DONE);
            assertThat(c.getShort() & 0xffff).isEqualTo(REPLY_TYPE_OFFSET_DATA);
            assertThat(c.getLong()).isEqualTo(9);
            assertThat(c.getInt()).isEqualTo(8 + 1024);
            assertThat(r.read(8).getLong()).isEqualTo(8192);
            r.read(1024);
            r.request(CMD_READ, 0, 10, SIZE, 1024);
            ByteBuffer e = r.read(20 + 6);
            assertThat(e.getInt()).isEqualTo(STRUCTURED_REPLY_MAGIC);
            assertThat(e.getShort() & 0xffff).isEqualTo(REPLY_FLAG_DONE);
            assertThat(e.getShort() & 0xffff).isEqualTo(REPLY_TYPE_ERROR);
            assertThat(e.getLong()).isEqualTo(10);
            assertThat(e.getInt()).isEqualTo(6);
            assertThat(e.getInt()).isEqualTo(EINVAL);
        }
        serverStillServes();
    }

    private static byte[] metaOption(String export, String... queries) {
        byte[] n = export.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + n.length + Arrays.stream(queries).mapToInt(q -> 4 + q.length()).sum());
        b.putInt(n.length).put(n).putInt(queries.length);
        for (String q : queries) {
            b.putInt(q.length()).put(q.getBytes(StandardCharsets.US_ASCII));
        }
        return b.array();
    }

    @Test
    void metaContextMistakesAndBlockStatusWithoutAContextGetErrors() throws IOException {
        try (Raw r = new Raw().greet(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES)) {
            // proto.md: SET_META_CONTEXT needs structured replies first.
            r.option(OPT_SET_META_CONTEXT, metaOption("disk", BASE_ALLOCATION));
            assertThat(r.optionReply(OPT_SET_META_CONTEXT)).isEqualTo(REP_ERR_INVALID);
            r.option(OPT_LIST_META_CONTEXT, metaOption("nosuch"));
            assertThat(r.optionReply(OPT_LIST_META_CONTEXT)).isEqualTo(REP_ERR_UNKNOWN);
            byte[] cut = metaOption("disk", BASE_ALLOCATION);
            r.option(OPT_LIST_META_CONTEXT, Arrays.copyOf(cut, cut.length - 3)); // a query longer than the option
            assertThat(r.optionReply(OPT_LIST_META_CONTEXT)).isEqualTo(REP_ERR_INVALID);
            r.option(OPT_LIST_META_CONTEXT, metaOption("disk", "qemu:dirty-bitmap:x")); // no such context
            assertThat(r.optionReply(OPT_LIST_META_CONTEXT)).isEqualTo(REP_ACK);
            r.option(OPT_LIST_META_CONTEXT, metaOption("disk"));
            assertThat(r.optionReply(OPT_LIST_META_CONTEXT)).isEqualTo(REP_META_CONTEXT);
            assertThat(r.optionReply(OPT_LIST_META_CONTEXT)).isEqualTo(REP_ACK);
            r.go("disk");
            r.request(CMD_BLOCK_STATUS, 0, 1, 0, 4096); // no context selected
            assertThat(r.simpleReply(1)).isEqualTo(EINVAL);
        }
        try (Raw r = new Raw().greet(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES)) {
            r.option(OPT_STRUCTURED_REPLY, new byte[0]);
            assertThat(r.optionReply(OPT_STRUCTURED_REPLY)).isEqualTo(REP_ACK);
            r.option(OPT_SET_META_CONTEXT, metaOption("disk", BASE_ALLOCATION));
            assertThat(r.optionReply(OPT_SET_META_CONTEXT)).isEqualTo(REP_META_CONTEXT);
            assertThat(r.optionReply(OPT_SET_META_CONTEXT)).isEqualTo(REP_ACK);
            r.go("disk");
            r.request(CMD_BLOCK_STATUS, CMD_FLAG_REQ_ONE, 2, 0, 8192); // one extent: the whole null disk is data
            ByteBuffer c = r.read(20 + 4 + 8);
            assertThat(c.getInt()).isEqualTo(STRUCTURED_REPLY_MAGIC);
            assertThat(c.getShort() & 0xffff).isEqualTo(REPLY_FLAG_DONE);
            assertThat(c.getShort() & 0xffff).isEqualTo(REPLY_TYPE_BLOCK_STATUS);
            assertThat(c.getLong()).isEqualTo(2);
            assertThat(c.getInt()).isEqualTo(12);
            assertThat(c.getInt()).isEqualTo(CONTEXT_BASE_ALLOCATION);
            assertThat(c.getInt()).isEqualTo(8192);
            assertThat(c.getInt()).isZero();
            r.request(CMD_BLOCK_STATUS, 0, 3, SIZE, 4096); // past the end: a structured error chunk
            ByteBuffer e = r.read(20 + 6);
            assertThat(e.getInt()).isEqualTo(STRUCTURED_REPLY_MAGIC);
            e.getShort();
            assertThat(e.getShort() & 0xffff).isEqualTo(REPLY_TYPE_ERROR);
            assertThat(e.getLong()).isEqualTo(3);
            assertThat(e.getInt()).isEqualTo(6);
            assertThat(e.getInt()).isEqualTo(EINVAL);
        }
        serverStillServes();
    }

    @Test
    void clientVanishingMidRequestLeavesTheServerServing() throws IOException {
        for (int i = 0; i < 20; i++) {
            try (Raw r = new Raw().greet(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES).go("disk")) {
                r.request(CMD_WRITE, 0, 1, 0, 65536);
                r.write(ByteBuffer.allocate(1000)); // a part of the payload, then gone
                for (int k = 0; k < 8; k++) {
                    r.request(CMD_READ, 0, 100 + k, 0, 65536); // never read: the replies pile up
                }
            }
            try (Raw r = new Raw()) {
                r.read(10); // gone in the middle of the greeting
            }
        }
        serverStillServes();
        assertThat(server.onMain(() -> server.export.clientCount())).isLessThanOrEqualTo(1);
    }
}
