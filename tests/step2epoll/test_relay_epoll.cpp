// The stage 2 protocol tests again, against server_epoll: the same chat
// protocol on a different event loop must behave the same, byte for byte.
#define STEP2_RELAY_EPOLL 1
#define STEP2_RELAY_SERVER "step2_multiclient/server_epoll"
#define STEP2_RELAY_TOO_MANY "2000000"
#define STEP2_RELAY_MAX_1000 \
    { "--max-clients", "1000" }
#include "../step2/test_relay.cpp"  // NOLINT(bugprone-suspicious-include)

// What epoll is for: descriptors past FD_SETSIZE are served like any other.
TEST_CASE("relay (epoll): clients on descriptors above FD_SETSIZE chat as usual") {
    // Descriptors 3..1100 taken: every client gets one above 1024.
    Child proc(relay_with_open_fds(1100));
    const auto first = proc.out().line();
    REQUIRE(first.has_value());
    const int port = std::stoi(first->substr(first->rfind(':') + 1));
    Conn a(port), b(port);
    CHECK(a.line() == "* welcome guest-1 (1 online)");
    CHECK(b.line() == "* welcome guest-2 (2 online)");
    CHECK(a.line() == "* guest-2 joined");
    b.send("past FD_SETSIZE\n");
    CHECK(a.line() == "guest-2: past FD_SETSIZE");
    CHECK(proc.running());
}
