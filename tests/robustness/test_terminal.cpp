// tests/robustness/test_terminal.cpp: no peer can drive the user's terminal.
//
// A hostile client sends ANSI escape sequences (clear screen, set the window
// title, blink), a C1 CSI, NUL, BEL, backspace, DEL and a bare CR through the
// relay. The relay passes text byte for byte (SPEC); the project's client
// must print every control byte but tab as "\xNN", so what reaches the
// terminal is inert text. Checked for the stage 2 and stage 3 clients.
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <memory>
#include <string>

#include "../../common/net.hpp"
#include "doctest.h"
#include "harness.hpp"

using namespace test;

namespace {

SpawnOptions piped_stdin() {
    SpawnOptions o;
    o.pipe_stdin = true;
    return o;
}

SpawnOptions stdin_from(const std::string& path) {
    SpawnOptions o;
    o.stdin_file = path;
    return o;
}

// One line with every kind of control byte a terminal reacts to.
const std::string kAttack = std::string("\x1b[2J\x1b[H\x1b]0;owned\x07 bell\x07 bs\x08 nul") +
                            std::string(1, '\0') +
                            " del\x7f cr\r c1\xc2\x9b"
                            "31m tab\tok \xc3\xa9"
                            " rlo\xe2\x80\xae"
                            "txt lri\xe2\x81\xa6 zw\xe2\x80\x8bsp bom\xef\xbb\xbf";
// What the client must print for it: the same, with the controls spelled out.
const std::string kShown =
    "\\x1b[2J\\x1b[H\\x1b]0;owned\\x07 bell\\x07 bs\\x08 nul\\x00 del\\x7f cr\\x0d "
    "c1\\xc2\\x9b31m tab\tok \xc3\xa9 rlo\\u202etxt lri\\u2066 zw\\u200bsp bom\\ufeff";
const std::string kPrivate = "/msg guest-1 \x1b[5mblink\x1b[0m";
const std::string kPrivateShown = "guest-2 (private): \\x1b[5mblink\\x1b[0m";

// The UTF-8 forms of the bidirectional controls and the zero-width and
// other invisible format characters (U+00AD, U+061C, U+200B-200F,
// U+2028-202E, U+2060-2064, U+2066-2069, U+FEFF), spelled out here rather
// than taken from the code under test.
bool has_invisible(const std::string& out) {
    if (out.find("\xc2\xad") != std::string::npos || out.find("\xd8\x9c") != std::string::npos ||
        out.find("\xef\xbb\xbf") != std::string::npos)
        return true;
    for (std::size_t i = 0; i + 2 < out.size(); ++i) {
        if (out[i] != '\xe2') continue;
        const auto b = static_cast<unsigned char>(out[i + 1]);
        const auto c = static_cast<unsigned char>(out[i + 2]);
        if (b == 0x80 && ((c >= 0x8b && c <= 0x8f) || (c >= 0xa8 && c <= 0xae))) return true;
        if (b == 0x81 && ((c >= 0xa0 && c <= 0xa4) || (c >= 0xa6 && c <= 0xa9))) return true;
    }
    return false;
}

// Nothing in `out` that a terminal would act on: only '\t' and '\n' below
// 0x20, no DEL, no C1 control in its UTF-8 form, no invisible format character.
bool inert(const std::string& out) {
    if (has_invisible(out)) return false;
    for (std::size_t i = 0; i < out.size(); ++i) {
        const auto c = static_cast<unsigned char>(out[i]);
        if (c < 0x20 && c != '\t' && c != '\n') return false;
        if (c == 0x7f) return false;
        if (c == 0xc2 && i + 1 < out.size() && static_cast<unsigned char>(out[i + 1]) >= 0x80 &&
            static_cast<unsigned char>(out[i + 1]) <= 0x9f)
            return false;
    }
    return true;
}

// The receiving client's stdout, line by line, until the sender has left.
void expect_escaped(Child& receiver) {
    CHECK(receiver.out().line() == "* guest-2 joined");
    CHECK(receiver.out().line() == "guest-2: " + kShown);
    CHECK(receiver.out().line() == kPrivateShown);
    CHECK(receiver.out().line() == "* guest-2 left");
    receiver.close_stdin();  // EOF: the client half-closes and exits 0
    const std::string rest = receiver.out().until_eof();
    CHECK(receiver.wait() == 0);
    CHECK(inert(rest));
}

}  // namespace

TEST_CASE("terminal safety, stage 2: escapes from a raw TCP peer are printed as \\xNN") {
    Server s = start_server("step2_multiclient/server");
    Child receiver({repo_path("step2_multiclient/client"), "127.0.0.1", std::to_string(s.port)},
                   piped_stdin());
    REQUIRE(receiver.out().line() == "* welcome guest-1 (1 online)");
    {
        Conn attacker(s.port);  // bytes straight onto the socket, nothing filtered
        REQUIRE(attacker.line().has_value());
        attacker.send(kAttack + "\r\n" + kPrivate + "\n");
        attacker.shutdown_write();
        attacker.until_eof();
    }
    expect_escaped(receiver);
}

TEST_CASE("terminal safety, stage 3: escapes from a TLS peer are printed as \\xNN") {
    Server s = start_server("step3_tls/server");
    Child receiver({repo_path("step3_tls/client"), "127.0.0.1", std::to_string(s.port)},
                   piped_stdin());
    REQUIRE(receiver.out().line() == "* welcome guest-1 (1 online)");
    {
        // The attacker is the project's own TLS client: it sends stdin as it is.
        TempPath input("attack");
        write_file(input.str(), kAttack + "\r\n" + kPrivate + "\n");
        Child attacker({repo_path("step3_tls/client"), "127.0.0.1", std::to_string(s.port)},
                       stdin_from(input.str()));
        CHECK(attacker.wait() == 0);
    }
    expect_escaped(receiver);
}

// The last line of a stream may lack its '\n': the client prints it at EOF,
// escaped like any other (raw, an escape sequence would reach the terminal).
TEST_CASE("terminal safety, stage 2: a last line without newline at EOF is printed escaped") {
    Listener peer;  // a hostile server: one line, then one without '\n', then FIN
    Child client({repo_path("step2_multiclient/client"), "127.0.0.1", std::to_string(peer.port())},
                 piped_stdin());
    common::Fd conn = peer.accept();
    REQUIRE(conn);
    common::send_all(conn.get(), "first\n" + kAttack);
    conn.reset();
    const std::string out = client.out().until_eof();
    CHECK(out == "first\n" + kShown + "\n");
    CHECK(inert(out));
    CHECK(client.wait() == 0);
}

TEST_CASE("terminal safety, stage 3: a last line without newline at EOF is printed escaped") {
    // A hostile TLS server with the stage's own certificate (make certs).
    std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_server_method()),
                                                          SSL_CTX_free);
    REQUIRE(ctx);
    REQUIRE(SSL_CTX_use_certificate_chain_file(
                ctx.get(), repo_path("step3_tls/certs/server.crt").c_str()) == 1);
    REQUIRE(SSL_CTX_use_PrivateKey_file(ctx.get(), repo_path("step3_tls/certs/server.key").c_str(),
                                        SSL_FILETYPE_PEM) == 1);
    Listener peer;
    Child client({repo_path("step3_tls/client"), "127.0.0.1", std::to_string(peer.port())},
                 piped_stdin());
    common::Fd conn = peer.accept();
    REQUIRE(conn);
    timeval tv{5, 0};  // no SSL call below may hang the test
    ::setsockopt(conn.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(conn.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.get()), SSL_free);
    REQUIRE(ssl);
    SSL_set_fd(ssl.get(), conn.get());
    REQUIRE(SSL_accept(ssl.get()) == 1);
    const std::string data = "first\n" + kAttack;
    REQUIRE(SSL_write(ssl.get(), data.data(), static_cast<int>(data.size())) ==
            static_cast<int>(data.size()));
    SSL_shutdown(ssl.get());  // close_notify: the clean end of the stream
    ssl.reset();
    conn.reset();
    const std::string out = client.out().until_eof();
    CHECK(out == "first\n" + kShown + "\n");
    CHECK(inert(out));
    CHECK(client.wait() == 0);
}
