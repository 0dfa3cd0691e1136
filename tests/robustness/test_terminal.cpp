// tests/robustness/test_terminal.cpp: no peer can drive the user's terminal.
//
// A hostile client sends ANSI escape sequences (clear screen, set the window
// title, blink), a C1 CSI, NUL, BEL, backspace, DEL and a bare CR through the
// relay. The relay passes text byte for byte (SPEC); the project's client
// must print every control byte but tab as "\xNN", so what reaches the
// terminal is inert text. Checked for the stage 2 and stage 3 clients.
#include <string>

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
                            "31m tab\tok \xc3\xa9";
// What the client must print for it: the same, with the controls spelled out.
const std::string kShown =
    "\\x1b[2J\\x1b[H\\x1b]0;owned\\x07 bell\\x07 bs\\x08 nul\\x00 del\\x7f cr\\x0d "
    "c1\\xc2\\x9b31m tab\tok \xc3\xa9";
const std::string kPrivate = "/msg guest-1 \x1b[5mblink\x1b[0m";
const std::string kPrivateShown = "guest-2 (private): \\x1b[5mblink\\x1b[0m";

// Nothing in `out` that a terminal would act on: only '\t' and '\n' below
// 0x20, no DEL, no C1 control in its UTF-8 form.
bool inert(const std::string& out) {
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
