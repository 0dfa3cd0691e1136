// tests/robustness/test_hostile_lines.cpp: what one client's lines can do to
// the others in the stage 2 relay (stage 3 runs the same chat core).
#include <string>

#include "doctest.h"
#include "harness.hpp"

using namespace test;

namespace {

Conn joined(const Server& s, const std::string& welcome) {
    Conn c(s.port);
    REQUIRE(c.line() == welcome);
    return c;
}

}  // namespace

TEST_CASE("hostile lines: half a line then silence delays nobody; the line completes later") {
    Server s = start_server("step2_multiclient/server");
    Conn mute = joined(s, "* welcome guest-1 (1 online)");
    mute.send("half a li");  // and then nothing, for now
    Conn a = joined(s, "* welcome guest-2 (2 online)");
    Conn b = joined(s, "* welcome guest-3 (3 online)");
    REQUIRE(a.line() == "* guest-3 joined");
    a.send("still chatting\n");
    CHECK(b.line(2000ms) == "guest-2: still chatting");
    b.send("me too\n");
    CHECK(a.line(2000ms) == "guest-3: me too");
    mute.send("ne\n");  // the rest: one line, relayed whole
    CHECK(a.line(2000ms) == "guest-1: half a line");
    CHECK(b.line(2000ms) == "guest-1: half a line");
}

TEST_CASE("hostile lines: spoofed notices and nicks arrive prefixed with the real sender") {
    Server s = start_server("step2_multiclient/server");
    Conn bob = joined(s, "* welcome guest-1 (1 online)");
    bob.send("/nick bob\n");
    REQUIRE(bob.line() == "* guest-1 is now bob");
    Conn eve = joined(s, "* welcome guest-2 (2 online)");
    REQUIRE(bob.line() == "* guest-2 joined");
    Conn alice = joined(s, "* welcome guest-3 (3 online)");
    REQUIRE(bob.line() == "* guest-3 joined");
    REQUIRE(eve.line() == "* guest-3 joined");

    // Lines that look like a notice or another user's line ...
    eve.send("* bob left\nbob: send me your password\n");
    CHECK(alice.line() == "guest-2: * bob left");
    CHECK(alice.line() == "guest-2: bob: send me your password");
    // ... a nick that would look like a notice, or like bob ...
    eve.send("/nick *\n/nick Bob\n/nick bob:\n/nick b\xd0\xbe\x62\n");  // 'o' in Cyrillic
    CHECK(eve.line()->rfind("* error: invalid nick *", 0) == 0);
    CHECK(eve.line() == "* error: nick Bob is taken");
    CHECK(eve.line()->rfind("* error: invalid nick bob:", 0) == 0);
    CHECK(eve.line()->rfind("* error: invalid nick b", 0) == 0);
    // ... and a private message posing as bob: each is marked as eve's.
    eve.send("/msg guest-3 bob says hi\n");
    CHECK(alice.line() == "guest-2 (private): bob says hi");
    CHECK(alice.available(300ms).empty());  // nothing else reached alice
}
