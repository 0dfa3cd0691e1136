// Stage 3: handshakes that go wrong cost only their own connection.
#include <chrono>
#include <csignal>
#include <string>

#include "../../common/net.hpp"
#include "doctest.h"
#include "harness.hpp"
#include "tls_conn.hpp"

using namespace test;

namespace {

std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1))
        ++n;
    return n;
}

}  // namespace

TEST_CASE("plaintext on the TLS port: that connection fails with one log line, others go on") {
    Certs certs;
    Server s = start_tls_server(certs);
    TlsConn before(s.port, with_ca(certs));
    REQUIRE(before.ok());
    REQUIRE(before.line() == "* welcome guest-1 (1 online)");

    Conn plain(s.port);
    plain.send("hello, is this the chat?\n");
    const std::string reply = plain.until_eof(3000ms);
    CHECK(reply.find("welcome") == std::string::npos);  // no chat over plaintext
    REQUIRE(eventually(
        [&] { return s.proc.stderr_text().find("TLS handshake failed") != std::string::npos; }));
    // One line for it, naming the peer.
    const std::string log = s.proc.stderr_text();
    CHECK(count(log, "TLS handshake failed") == 1);

    // The server is up, and the failed connection spent no guest number.
    TlsConn after(s.port, with_ca(certs));
    REQUIRE(after.ok());
    CHECK(after.line() == "* welcome guest-2 (2 online)");
    CHECK(before.line() == "* guest-2 joined");
}

TEST_CASE("a TLS 1.1-only client is refused; the server stays up") {
    Certs certs;
    Server s = start_tls_server(certs);
    TlsOptions old = with_ca(certs);
    old.min_version = TLS1_1_VERSION;
    old.max_version = TLS1_1_VERSION;
    TlsConn c(s.port, old);
    CHECK_FALSE(c.ok());
    INFO(c.error());
    CHECK(c.error().find("protocol version") != std::string::npos);
    REQUIRE(eventually(
        [&] { return s.proc.stderr_text().find("unsupported protocol") != std::string::npos; }));
    TlsConn modern(s.port, with_ca(certs));
    REQUIRE(modern.ok());
    CHECK(modern.line() == "* welcome guest-1 (1 online)");
}

TEST_CASE("an idle TCP connection and a half-sent ClientHello do not delay another's welcome") {
    Certs certs;
    Server s = start_tls_server(certs);  // --handshake-timeout 10 s by default
    Conn idle(s.port);                   // TCP handshake done, then nothing
    Conn half(s.port);
    const std::string hello = client_hello();
    half.send(hello.substr(0, hello.size() / 2));  // the server now waits for the rest

    const auto start = std::chrono::steady_clock::now();
    TlsConn c(s.port, with_ca(certs));
    REQUIRE(c.ok());
    CHECK(c.line(5000ms) == "* welcome guest-1 (1 online)");
    // Far below the 10 s a blocking SSL_accept on `idle` would have cost. The
    // bound sits halfway, so a busy machine's delays cannot reach it.
    CHECK(std::chrono::steady_clock::now() - start < 5s);
}

TEST_CASE("a stalled handshake is dropped after --handshake-timeout, and only it") {
    Certs certs;
    Server s = start_tls_server(certs, {"--handshake-timeout", "1"});
    TlsConn chatting(s.port, with_ca(certs));
    REQUIRE(chatting.ok());
    REQUIRE(chatting.line() == "* welcome guest-1 (1 online)");

    Conn half(s.port);
    const std::string hello = client_hello();
    half.send(hello.substr(0, 40));
    const auto start = std::chrono::steady_clock::now();
    half.until_eof(8000ms);  // the server closes it
    const auto waited = std::chrono::steady_clock::now() - start;
    CHECK(waited >= 800ms);  // not before the deadline ...
    CHECK(waited < 5000ms);  // ... and nowhere near the 10 s default
    REQUIRE(eventually(
        [&] { return s.proc.stderr_text().find("TLS handshake timed out") != std::string::npos; }));

    // The established client was not touched by it.
    chatting.send("/who\n");
    CHECK(chatting.line() == "* online: guest-1");
}

TEST_CASE("a client that resets mid-handshake costs nothing; no descriptor leaks") {
    Certs certs;
    Server s = start_tls_server(certs);
    TlsConn first(s.port, with_ca(certs));
    REQUIRE(first.ok());
    REQUIRE(first.line() == "* welcome guest-1 (1 online)");
    const int baseline = settled_fd_count(s.proc.pid());
    const std::string hello = client_hello();
    for (int i = 0; i < 20; ++i) {
        Conn c(s.port);
        c.send(hello.substr(0, hello.size() / 3));
        c.reset();
    }
    for (int i = 0; i < 20; ++i) {
        Conn c(s.port);
        c.send(hello);  // a whole ClientHello, then gone before the server's reply is read
        c.close();
    }
    CHECK(eventually([&] { return open_fd_count(s.proc.pid()) == baseline; }, 5000ms));
    TlsConn next(s.port, with_ca(certs));
    REQUIRE(next.ok());
    CHECK(next.line() == "* welcome guest-2 (2 online)");
}

TEST_CASE("garbage inside an established TLS connection drops that client only") {
    Certs certs;
    Server s = start_tls_server(certs);
    TlsConn victim(s.port, with_ca(certs));
    REQUIRE(victim.ok());
    REQUIRE(victim.line() == "* welcome guest-1 (1 online)");
    TlsConn other(s.port, with_ca(certs));
    REQUIRE(other.ok());
    REQUIRE(other.line() == "* welcome guest-2 (2 online)");
    REQUIRE(victim.line() == "* guest-2 joined");

    // A forged application-data record: right header, random contents. Its
    // authentication tag cannot match, so SSL_read fails for that client.
    std::string record = "\x17\x03\x03";
    record += std::string("\x00\x40", 2) + random_bytes(64, 3);
    common::send_all(victim.raw_fd(), record);
    CHECK(other.line() == "* guest-1 left");
    REQUIRE(eventually([&] {
        return s.proc.stderr_text().find("bad record mac") != std::string::npos ||
               s.proc.stderr_text().find("decryption failed") != std::string::npos;
    }));
    other.send("/who\n");
    CHECK(other.line() == "* online: guest-2");
}

TEST_CASE("SIGTERM with a client stuck in its handshake still exits 0 at once") {
    Certs certs;
    Server s = start_tls_server(certs);  // --handshake-timeout 10 s
    Conn half(s.port);
    const std::string hello = client_hello();
    half.send(hello.substr(0, 50));
    TlsConn member(s.port, with_ca(certs));
    REQUIRE(member.ok());
    REQUIRE(member.line() == "* welcome guest-1 (1 online)");
    const auto start = std::chrono::steady_clock::now();
    s.proc.signal(SIGTERM);
    CHECK(member.line() == "* server shutting down");
    CHECK(s.proc.wait(8000ms) == 0);
    CHECK(std::chrono::steady_clock::now() - start < 5000ms);  // not the 10 s handshake deadline
    CHECK(half.until_eof(1000ms).empty());                     // closed, never welcomed
}
