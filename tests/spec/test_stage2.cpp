// SPEC.md "Stage 2", "Chat protocol" and the chat lines of "Details that
// settle the edge cases", against the select() relay. The rows the step2
// suite already checks are not repeated here; these are the boundaries.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

#include <string>
#include <thread>

#include "spec.hpp"

using namespace spec;

namespace {

const char* const kRelay = "step2_multiclient/server";

void expect_quiet(Conn& c, Duration t = 200ms) {
    CHECK(c.available(t).empty());
}

// Everything until the connection ends, and how it ended: 0 for a FIN (a
// clean close), else the errno (ECONNRESET for an RST). The harness's Reader
// treats both as EOF; a user's ncat does not ("Connection reset by peer").
std::pair<std::string, int> read_until_closed(int fd, Duration timeout = 3000ms) {
    std::string data;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        char buf[4096];
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n == 0) return {data, 0};
        if (n < 0) return {data, errno};
        data.append(buf, static_cast<std::size_t>(n));
    }
    return {data, ETIMEDOUT};
}

}  // namespace

TEST_CASE("chat: (n online) counts the newcomer and only those online now") {
    Server s = start_server(kRelay);
    auto a = join(s.port, "* welcome guest-1 (1 online)");
    auto b = join(s.port, "* welcome guest-2 (2 online)");
    CHECK(a->line() == "* guest-2 joined");
    b->send("/quit\n");
    CHECK(b->until_eof() == "* bye\n");
    CHECK(a->line() == "* guest-2 left");
    auto c = join(s.port, "* welcome guest-3 (2 online)");  // guest-2 is not reused
    CHECK(a->line() == "* guest-3 joined");
}

TEST_CASE("chat: /nick NAME: NAME is the whole rest of the line (`/nick a b` is an error)") {
    Server s = start_server(kRelay);
    auto a = join(s.port, "* welcome guest-1 (1 online)");
    for (const char* bad : {"/nick a b", "/nick a ", "/nick  a", "/nick a\tb", "/nick caf\xc3\xa9",
                            "/nick 12345678901234567", "/nick a.b", "/nick"}) {
        INFO(bad);
        a->send(std::string(bad) + "\n");
        const auto reply = a->line();
        REQUIRE(reply.has_value());
        CHECK(reply->rfind("* error: ", 0) == 0);
    }
    a->send("/who\n");
    CHECK(a->line() == "* online: guest-1");  // nothing was renamed
    a->send("/nick A_b-9\n");
    CHECK(a->line() == "* guest-1 is now A_b-9");
}

TEST_CASE("chat: uniqueness ignores case, so `Bob` and `bob` cannot both be online") {
    Server s = start_server(kRelay);
    auto a = join(s.port, "* welcome guest-1 (1 online)");
    auto b = join(s.port, "* welcome guest-2 (2 online)");
    CHECK(a->line() == "* guest-2 joined");
    a->send("/nick Bob\n");
    CHECK(a->line() == "* guest-1 is now Bob");
    CHECK(b->line() == "* guest-1 is now Bob");
    for (const char* taken : {"/nick bob", "/nick BOB", "/nick Bob", "/nick GUEST-1"}) {
        INFO(taken);
        b->send(std::string(taken) + "\n");
        const auto reply = b->line();
        REQUIRE(reply.has_value());
        if (std::string(taken) == "/nick GUEST-1") {  // guest-1 is free again
            CHECK(*reply == "* guest-2 is now GUEST-1");
            CHECK(a->line() == "* guest-2 is now GUEST-1");
        } else {
            CHECK(reply->rfind("* error: ", 0) == 0);
        }
    }
    expect_quiet(*a);
}

TEST_CASE("chat: renaming to one's own nick is an error") {
    Server s = start_server(kRelay);
    auto a = join(s.port, "* welcome guest-1 (1 online)");
    auto b = join(s.port, "* welcome guest-2 (2 online)");
    CHECK(a->line() == "* guest-2 joined");
    a->send("/nick guest-1\n");
    const auto reply = a->line();
    REQUIRE(reply.has_value());
    CHECK(reply->rfind("* error: ", 0) == 0);
    expect_quiet(*b);  // no "is now" notice to anyone
}

TEST_CASE("chat: /msg NAME TEXT without TEXT: `* error: usage: /msg NAME TEXT`") {
    Server s = start_server(kRelay);
    auto a = join(s.port, "* welcome guest-1 (1 online)");
    auto b = join(s.port, "* welcome guest-2 (2 online)");
    CHECK(a->line() == "* guest-2 joined");
    for (const char* usage : {"/msg", "/msg ", "/msg guest-2", "/msg guest-2 "}) {
        INFO(usage);
        a->send(std::string(usage) + "\n");
        CHECK(a->line() == "* error: usage: /msg NAME TEXT");
    }
    a->send("/msg nobody hello\n");
    CHECK(a->line() == "* error: no such user nobody");
    a->send("/msg guest-2 two  spaces stay\n");
    CHECK(b->line() == "guest-1 (private): two  spaces stay");
    expect_quiet(*a);
    expect_quiet(*b, 50ms);
}

TEST_CASE("chat: an unknown command is reported by its word alone (`/foo`, whatever follows it)") {
    Server s = start_server(kRelay);
    auto a = join(s.port, "* welcome guest-1 (1 online)");
    const std::pair<const char*, const char*> cases[] =
        {
            {"/foo", "/foo"},
            {"/foo bar baz", "/foo"},
            {"/foo\tbar", "/foo"},
            {"/NICK bob", "/NICK"},
            {"/", "/"},
            {"//x y", "//x"},
            {"/foo\r", "/foo"},  // CRLF: the '\r' is dropped before anything else
        };
    for (const auto& c : cases) {
        const std::string line = c.first, word = c.second;
        INFO(line);
        a->send(std::string(line) + "\n");
        CHECK(a->line() == "* error: unknown command " + std::string(word));
    }
}

TEST_CASE(
    "chat: a line holds at most 4096 bytes without its newline: 4096 buffered with no "
    "newline is not yet too long") {
    Server s = start_server(kRelay);
    auto a = join(s.port, "* welcome guest-1 (1 online)");
    auto b = join(s.port, "* welcome guest-2 (2 online)");
    CHECK(a->line() == "* guest-2 joined");
    const std::string max(4096, 'm');
    a->send(max);
    expect_quiet(*a, 300ms);  // neither an error nor a close
    a->send("\n");
    CHECK(b->line() == "guest-1: " + max);
    a->send(max + "\r");  // the '\r' may be the one before '\n': not counted
    expect_quiet(*a, 300ms);
    a->send("\n");
    CHECK(b->line() == "guest-1: " + max);
}

TEST_CASE(
    "chat: once more than 4096 bytes are buffered with no newline, the too-long error and "
    "close") {
    Server s = start_server(kRelay);
    auto a = join(s.port, "* welcome guest-1 (1 online)");
    auto b = join(s.port, "* welcome guest-2 (2 online)");
    CHECK(a->line() == "* guest-2 joined");
    a->send(std::string(4096, 'x'));
    std::this_thread::sleep_for(100ms);
    a->send("y");  // 4097 bytes, no newline, and the socket stays open
    CHECK(a->until_eof(3000ms) == "* error: line too long (max 4096 bytes)\n");
    CHECK(b->line() == "* guest-1 left");
    // "\r" not followed by "\n" counts: 4096 bytes, '\r', 'z' is 4098 bytes of line.
    auto c = join(s.port, "* welcome guest-3 (2 online)");
    CHECK(b->line() == "* guest-3 joined");
    c->send(std::string(4096, 'x') + "\rz\n");
    CHECK(c->until_eof(3000ms) == "* error: line too long (max 4096 bytes)\n");
    CHECK(b->line() == "* guest-3 left");
}

namespace {
void server_full_then_closed(const char* relay) {
    Server s = start_server(relay, {"--max-clients", "1"});
    auto a = join(s.port, "* welcome guest-1 (1 online)");
    // What `printf 'hi\n' | nc HOST PORT` does: a line right after connecting.
    // Closing a socket with that line unread would send RST instead of FIN:
    // the client reads the error, then "Connection reset by peer".
    for (int i = 0; i < 30; ++i) {
        INFO("attempt " << i);
        Conn extra(s.port);
        extra.send(std::string(2000, 'h') + "\n");
        std::this_thread::sleep_for(10ms);
        const auto [got, how] = read_until_closed(extra.fd());
        CHECK(got == "* error: server full\n");
        CHECK(how == 0);  // FIN, not RST
    }
    a->send("/who\n");
    CHECK(a->line() == "* online: guest-1");
    a->send("/quit\n");
    CHECK(a->until_eof() == "* bye\n");
    CHECK(eventually(
        [&] { return s.proc.stderr_text().find("guest-1) closed") != std::string::npos; }));
    join(s.port, "* welcome guest-2 (1 online)");  // no guest number was spent on the refused
}
}  // namespace

TEST_CASE(
    "chat: server full — newcomer: `* error: server full`, then closed (even one that "
    "already sent a line)") {
    server_full_then_closed(kRelay);
}

TEST_CASE("chat: server full — the same from server_epoll") {
    server_full_then_closed("step2_multiclient/server_epoll");
}

TEST_CASE("chat: `/quit` — sender: `* bye`, then closed; what follows /quit is ignored") {
    Server s = start_server(kRelay);
    auto a = join(s.port, "* welcome guest-1 (1 online)");
    auto b = join(s.port, "* welcome guest-2 (2 online)");
    CHECK(a->line() == "* guest-2 joined");
    b->send("/quit\r\nnot relayed\n");
    CHECK(b->until_eof() == "* bye\n");
    CHECK(a->line() == "* guest-2 left");
    expect_quiet(*a);
}

TEST_CASE("chat: ncat --crlf (CRLF line ends) chats like nc") {
    Server s = start_server(kRelay);
    auto a = join(s.port, "* welcome guest-1 (1 online)");
    Child ncat({"ncat", "--crlf", "127.0.0.1", std::to_string(s.port)},
               SpawnOptions{true, {}, {}, {}});
    CHECK(ncat.out().line() == "* welcome guest-2 (2 online)");
    CHECK(a->line() == "* guest-2 joined");
    const std::string typed = "/nick carol\nhello from ncat\n/who\n";
    REQUIRE(::write(ncat.stdin_fd(), typed.data(), typed.size()) ==
            static_cast<ssize_t>(typed.size()));
    CHECK(a->line() == "* guest-2 is now carol");
    CHECK(a->line() == "carol: hello from ncat");
    CHECK(ncat.out().line() == "* guest-2 is now carol");
    CHECK(ncat.out().line() == "* online: guest-1, carol");
    ncat.close_stdin();
    CHECK(a->line() == "* carol left");
}

TEST_CASE("stage 2: SIGINT or SIGTERM: every chat client reads `* server shutting down`, exit 0") {
    for (int sig : {SIGINT, SIGTERM}) {
        Server s = start_server(kRelay);
        auto a = join(s.port, "* welcome guest-1 (1 online)");
        auto b = join(s.port, "* welcome guest-2 (2 online)");
        CHECK(a->line() == "* guest-2 joined");
        s.proc.signal(sig);
        CHECK(s.proc.wait(3000ms) == 0);
        CHECK(a->until_eof() == "* server shutting down\n");
        CHECK(b->until_eof() == "* server shutting down\n");
    }
}

TEST_CASE(
    "chat: a client whose unsent output passes 1 MiB is dropped — one that reads slowly but "
    "steadily is not: senders wait for it (deliberate: the relay stops reading while a "
    "reader is more than 256 KiB behind, for at most 1 s at a time)") {
    Server s = start_server(kRelay);
    auto slow = join(s.port, "* welcome guest-1 (1 online)");
    const int small = 32 * 1024;  // keep the kernel from hiding the backlog in its buffers
    REQUIRE(::setsockopt(slow->fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);
    auto talker = join(s.port, "* welcome guest-2 (2 online)");
    CHECK(slow->line() == "* guest-2 joined");
    const std::string line = std::string(1000, 't') + "\n";
    constexpr int kLines = 6 * 1024;  // 6 MiB, far more than the 1 MiB limit
    std::thread writer([&] {
        std::string batch;
        for (int i = 0; i < 64; ++i)
            batch += line;
        for (int n = 0; n < kLines; n += 64)
            talker->send(batch);
    });
    int got = 0;
    bool dropped = false;
    while (got < kLines) {
        std::this_thread::sleep_for(5ms);  // a slow reader: about 64 KiB per wake-up
        const std::string chunk = slow->exact(64 * 1024, 5000ms);
        if (chunk.empty()) {
            dropped = true;
            break;
        }
        got += static_cast<int>(std::count(chunk.begin(), chunk.end(), '\n'));
    }
    writer.join();
    CHECK_FALSE(dropped);
    CHECK(got >= kLines);
    CHECK(s.proc.stderr_text().find("too slow") == std::string::npos);
}
