// Stage 3: the stage 2 chat protocol, byte for byte, over TLS.
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "doctest.h"
#include "harness.hpp"
#include "tls_conn.hpp"

using namespace test;

namespace {

// This process (and what it starts) in a network namespace of its own, with
// its loopback up and TCP send buffers capped at `wmem_max` bytes (on the
// host's loopback they grow to 4 MiB, which hides WANT_WRITE); back in the
// old namespace when destroyed. Needs root (CAP_SYS_ADMIN): ok() says.
class PrivateNetwork {
  public:
    explicit PrivateNetwork(int wmem_max) : home_(::open("/proc/self/ns/net", O_RDONLY)) {
        if (!home_ || ::unshare(CLONE_NEWNET) != 0) {
            fail("unshare(CLONE_NEWNET)");
            return;
        }
        inside_ = true;
        const common::Fd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        ifreq lo{};
        std::strcpy(lo.ifr_name, "lo");
        if (!s || ::ioctl(s.get(), SIOCGIFFLAGS, &lo) != 0) {
            fail("SIOCGIFFLAGS lo");
            return;
        }
        lo.ifr_flags = static_cast<short>(lo.ifr_flags | IFF_UP);
        if (::ioctl(s.get(), SIOCSIFFLAGS, &lo) != 0) {
            fail("SIOCSIFFLAGS lo");
            return;
        }
        std::ofstream("/proc/sys/net/ipv4/tcp_wmem") << "4096 16384 " << wmem_max << "\n";
        std::ifstream check("/proc/sys/net/ipv4/tcp_wmem");
        int low = 0, standard = 0, max = 0;
        if (!(check >> low >> standard >> max) || max != wmem_max) {
            fail("tcp_wmem");
            return;
        }
        ok_ = true;
    }
    ~PrivateNetwork() {
        if (inside_) ::setns(home_.get(), CLONE_NEWNET);
    }
    PrivateNetwork(const PrivateNetwork&) = delete;
    PrivateNetwork& operator=(const PrivateNetwork&) = delete;
    bool ok() const { return ok_; }
    const std::string& why() const { return why_; }

  private:
    void fail(const char* what) { why_ = std::string(what) + ": " + std::strerror(errno); }
    common::Fd home_;
    bool inside_ = false, ok_ = false;
    std::string why_;
};

}  // namespace

TEST_CASE("step3: TLS 1.3 by default, then the welcome; guest numbers in handshake order") {
    Certs certs;
    Server s = start_tls_server(certs);
    Member a(s.port, certs);
    CHECK(a.conn.version() == "TLSv1.3");
    CHECK(a.welcome == "* welcome guest-1 (1 online)");
    Member b(s.port, certs);
    CHECK(b.welcome == "* welcome guest-2 (2 online)");
    CHECK(a.conn.line() == "* guest-2 joined");
}

TEST_CASE("step3: a TLS 1.2 client is served with an ECDHE + AEAD suite") {
    Certs certs;
    Server s = start_tls_server(certs);
    TlsOptions o = with_ca(certs);
    o.max_version = TLS1_2_VERSION;
    TlsConn c(s.port, o);
    INFO(c.error());
    REQUIRE(c.ok());
    CHECK(c.version() == "TLSv1.2");
    CHECK(c.cipher().rfind("ECDHE-", 0) == 0);
    const bool aead = c.cipher().find("GCM") != std::string::npos ||
                      c.cipher().find("CHACHA20") != std::string::npos;
    CHECK(aead);
    CHECK(c.line() == "* welcome guest-1 (1 online)");
}

TEST_CASE("step3: text, /nick, /msg, /who, unknown commands and /quit as in stage 2") {
    Certs certs;
    Server s = start_tls_server(certs);
    Member a(s.port, certs);
    Member b(s.port, certs);
    REQUIRE(a.conn.line() == "* guest-2 joined");

    a.conn.send("hello over tls\r\n");
    CHECK(b.conn.line() == "guest-1: hello over tls");

    a.conn.send("/nick alice\n");
    CHECK(a.conn.line() == "* guest-1 is now alice");
    CHECK(b.conn.line() == "* guest-1 is now alice");

    b.conn.send("/msg alice psst\n");
    CHECK(a.conn.line() == "guest-2 (private): psst");

    b.conn.send("/who\n");
    CHECK(b.conn.line() == "* online: alice, guest-2");

    b.conn.send("/frobnicate now\n");
    CHECK(b.conn.line() == "* error: unknown command /frobnicate");

    a.conn.send("\n");  // empty lines are ignored
    a.conn.send("/quit\n");
    CHECK(a.conn.line() == "* bye");
    a.conn.until_eof();
    CHECK(a.conn.eof());
    CHECK(a.conn.got_close_notify());  // a clean TLS close, not a bare FIN
    CHECK(b.conn.line() == "* alice left");
}

TEST_CASE("step3: /help, usage errors and nick rules over TLS") {
    Certs certs;
    Server s = start_tls_server(certs);
    Member a(s.port, certs);
    a.conn.send("/help\n");
    auto first = a.conn.line();
    REQUIRE(first.has_value());
    CHECK(first->rfind("* ", 0) == 0);
    a.conn.available(200ms);  // the rest of the help
    a.conn.send("/msg nobody\n");
    CHECK(a.conn.line() == "* error: usage: /msg NAME TEXT");
    a.conn.send("/msg nobody hi\n");
    CHECK(a.conn.line() == "* error: no such user nobody");
    a.conn.send("/nick a b\n");
    const auto bad = a.conn.line();
    REQUIRE(bad.has_value());
    CHECK(bad->rfind("* error: ", 0) == 0);
    a.conn.send("/who\n");
    CHECK(a.conn.line() == "* online: guest-1");
}

TEST_CASE("step3: close_notify from a client is its EOF: the last line counts, then it leaves") {
    Certs certs;
    Server s = start_tls_server(certs);
    Member a(s.port, certs);
    Member b(s.port, certs);
    REQUIRE(a.conn.line() == "* guest-2 joined");
    a.conn.send("last words without newline");
    a.conn.send_close_notify();
    CHECK(b.conn.line() == "guest-1: last words without newline");
    CHECK(b.conn.line() == "* guest-1 left");
    a.conn.until_eof();
    CHECK(a.conn.eof());
}

TEST_CASE("step3: a line over 4096 bytes gets the error and a close") {
    Certs certs;
    Server s = start_tls_server(certs);
    Member a(s.port, certs);
    Member b(s.port, certs);
    REQUIRE(a.conn.line() == "* guest-2 joined");
    a.conn.send(std::string(5000, 'x'));
    CHECK(a.conn.line() == "* error: line too long (max 4096 bytes)");
    a.conn.until_eof();
    CHECK(a.conn.eof());
    CHECK(b.conn.line() == "* guest-1 left");
}

TEST_CASE("step3: 64 KiB in one SSL_write (several TLS records) is relayed whole, in order") {
    Certs certs;
    Server s = start_tls_server(certs);
    Member a(s.port, certs);
    Member b(s.port, certs);
    REQUIRE(a.conn.line() == "* guest-2 joined");
    std::string burst;
    std::vector<std::string> lines;
    for (int i = 0; burst.size() < 64 * 1024; ++i) {
        std::string line =
            "line " + std::to_string(i) + " " + std::string(100 + i % 900, 'a' + i % 26);
        burst += line + "\n";
        lines.push_back(line);
    }
    a.conn.send(burst);  // one SSL_write_ex call: OpenSSL cuts it into 16 KiB records
    for (const auto& line : lines) {
        auto got = b.conn.line();
        REQUIRE(got.has_value());
        REQUIRE(*got == "guest-1: " + line);
    }
    CHECK(b.conn.available(200ms).empty());
}

TEST_CASE("step3: a reader that pauses gets every line once it reads again") {
    Certs certs;
    Server s = start_tls_server(certs);
    Member a(s.port, certs);
    Member b(s.port, certs);
    REQUIRE(a.conn.line() == "* guest-2 joined");
    // ~600 KiB for b while b reads nothing: they wait in the kernel's buffers
    // and the server's queue for b (stage 2's backpressure holds a back),
    // and every line must come out whole and in order when b reads again.
    const std::string text(1000, 'z');
    const int count = 600;
    for (int i = 0; i < count; ++i)
        a.conn.send(std::to_string(i) + text + "\n");
    for (int i = 0; i < count; ++i) {
        auto got = b.conn.line();
        REQUIRE(got.has_value());
        REQUIRE(*got == "guest-1: " + std::to_string(i) + text);
    }
    a.conn.send("/who\n");
    CHECK(a.conn.line() == "* online: guest-1, guest-2");
}

TEST_CASE("step3: SIGTERM tells TLS clients, closes with close_notify, exits 0") {
    Certs certs;
    Server s = start_tls_server(certs);
    Member a(s.port, certs);
    s.proc.signal(SIGTERM);
    CHECK(a.conn.line() == "* server shutting down");
    a.conn.until_eof();
    CHECK(a.conn.got_close_notify());
    CHECK(s.proc.wait(3000ms) == 0);
}

TEST_CASE(
    "step3: --max-clients counts handshaking clients; the refused one is told after its "
    "handshake") {
    Certs certs;
    Server s = start_tls_server(certs, {"--max-clients", "1"});
    // TCP only: in the server's eyes still in its handshake. It is ahead in
    // the accept queue, so the server takes it before the next one.
    Conn idle(s.port);
    TlsConn refused(s.port, with_ca(certs));
    INFO(refused.error());
    REQUIRE(refused.ok());  // the handshake completes first
    CHECK(refused.line() == "* error: server full");
    refused.until_eof();
    CHECK(refused.eof());
    idle.close();
    // The slot is free again; the refused client spent no guest number.
    CHECK(eventually(
        [&] {
            TlsConn c(s.port, with_ca(certs));
            return c.ok() && c.line() == "* welcome guest-1 (1 online)";
        },
        3000ms));
}

TEST_CASE("step3: a TLS client that never reads is dropped (too slow); the others get everything") {
    Certs certs;
    Server s = start_tls_server(certs);
    Member slow(s.port, certs);  // guest-1: never reads again
    Member talker(s.port, certs);
    Member listener(s.port, certs);
    REQUIRE(talker.conn.line() == "* guest-3 joined");
    // 8 MiB from the talker: more than the kernel buffers towards `slow` hold
    // plus the 1 MiB the server queues for it. One thread per TLS session
    // (an SSL object is not shared between threads).
    const std::string line = std::string(1000, 'z') + "\n";
    constexpr int kLines = 8 * 1024;
    std::thread sender([&] {
        std::string batch;
        for (int i = 0; i < 64; ++i)
            batch += line;
        try {
            for (int n = 0; n < kLines; n += 64)
                talker.conn.send(batch);
        } catch (...) {  // a failed send (already reported): not past this thread
        }
    });
    int got = 0, too_slow = 0;
    while (got < kLines) {
        const auto l = listener.conn.line(20000ms);
        if (!l) break;
        if (*l == "* guest-1 left (too slow)") {
            ++too_slow;
        } else if (l->size() > 1000) {
            ++got;
        }
    }
    sender.join();
    CHECK(got == kLines);
    CHECK(too_slow == 1);
    CHECK(eventually([&] { return s.proc.stderr_text().find("too slow") != std::string::npos; }));
}

TEST_CASE("step3: after WANT_WRITE the same record is retried: a slow reader gets every line") {
    // A reader that pauses while ~600 KiB come for it, with a send buffer
    // that cannot hold them: when it reads again and select() says writable,
    // SSL_write fills the little room there is and says WANT_WRITE with a
    // record half in the kernel. The server must then pass the very same
    // bytes again (docs/03-tls.md#ssl_write); other bytes would corrupt the
    // stream, and OpenSSL would fail with "bad write retry".
    PrivateNetwork net(64 * 1024);
    if (!net.ok()) {
        MESSAGE("skipped: needs a network namespace of its own (root): " << net.why());
        return;
    }
    Certs certs;
    Server s = start_tls_server(certs, {"--explain"});
    Member talker(s.port, certs);
    Member reader(s.port, certs);
    REQUIRE(talker.conn.line() == "* guest-2 joined");
    // From its own thread (an SSL object is not shared): the talker's sends
    // wait while the server holds it back for the paused reader.
    const std::string pad(1000, 'w');
    constexpr int kLines = 600;  // under the 1 MiB after which a reader is dropped
    std::thread sender([&] {
        try {
            for (int i = 0; i < kLines; ++i)
                talker.conn.send(std::to_string(i) + pad + "\n");
        } catch (...) {  // a failed send (already reported): not past this thread
        }
    });
    // If a REQUIRE below fails: end the server first, so that a send still
    // waiting in the sender fails instead of waiting forever, then join it.
    struct JoinSender {
        std::thread& thread;
        Server& server;
        ~JoinSender() {
            if (!thread.joinable()) return;
            server.proc.signal(SIGKILL);
            thread.join();
        }
    } join_sender{sender, s};
    std::this_thread::sleep_for(300ms);
    for (int i = 0; i < kLines; ++i) {
        const auto got = reader.conn.line(10000ms);
        REQUIRE(got.has_value());
        REQUIRE(*got == "guest-1: " + std::to_string(i) + pad);
    }
    sender.join();
    const std::string log = s.proc.stderr_text();
    CHECK(log.find("WANT_WRITE") != std::string::npos);  // the path was taken
    CHECK(log.find("bad write retry") == std::string::npos);
    CHECK(log.find("too slow") == std::string::npos);
}
