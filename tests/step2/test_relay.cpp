// Stage 2 integration tests: the select() chat relay, real binary on loopback.
#include <linux/sockios.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "doctest.h"
#include "harness.hpp"

using namespace test;

namespace {

// tests/step2epoll/ includes this file to run the same tests against
// server_epoll, whose --max-clients default and ceiling are higher.
#ifndef STEP2_RELAY_SERVER
#define STEP2_RELAY_SERVER "step2_multiclient/server"
#define STEP2_RELAY_TOO_MANY "2000"
#define STEP2_RELAY_MAX_1000 \
    {}  // the default
#endif
const char* const kServer = STEP2_RELAY_SERVER;

// A connected chat client whose welcome line was read and checked.
std::unique_ptr<Conn> join(const Server& s, const std::string& expected_welcome = "") {
    auto c = std::make_unique<Conn>(s.port);
    const auto welcome = c->line();
    REQUIRE(welcome.has_value());
    if (!expected_welcome.empty()) {
        CHECK(*welcome == expected_welcome);
    } else {
        CHECK(welcome->rfind("* welcome guest-", 0) == 0);
    }
    return c;
}

// Read and check the next line.
void expect(Conn& c, const std::string& line) {
    CHECK(c.line() == line);
}

// Nothing more arrives soon.
void expect_quiet(Conn& c, Duration t = 200ms) {
    CHECK(c.available(t).empty());
}

}  // namespace

TEST_CASE("relay: connect — welcome counts the newcomer; the others read joined") {
    Server s = start_server(kServer);
    auto a = join(s, "* welcome guest-1 (1 online)");
    auto b = join(s, "* welcome guest-2 (2 online)");
    expect(*a, "* guest-2 joined");
    auto c = join(s, "* welcome guest-3 (3 online)");
    expect(*a, "* guest-3 joined");
    expect(*b, "* guest-3 joined");
    expect_quiet(*c);
}

TEST_CASE("relay: a text line reaches every other client, not the sender; empty lines ignored") {
    Server s = start_server(kServer);
    auto a = join(s);
    auto b = join(s);
    auto c = join(s);
    expect(*a, "* guest-2 joined");
    expect(*a, "* guest-3 joined");
    expect(*b, "* guest-3 joined");
    a->send("\n\r\nhello, world\n");
    expect(*b, "guest-1: hello, world");
    expect(*c, "guest-1: hello, world");
    expect_quiet(*a);
    expect_quiet(*b, 50ms);
}

TEST_CASE("relay: CRLF; a line split over three writes; two lines in one write") {
    Server s = start_server(kServer);
    auto a = join(s);
    auto b = join(s);
    expect(*a, "* guest-2 joined");
    a->send("crlf line\r\n");
    expect(*b, "guest-1: crlf line");
    a->send("sp");
    std::this_thread::sleep_for(50ms);
    a->send("li");
    std::this_thread::sleep_for(50ms);
    a->send("t\n");
    expect(*b, "guest-1: split");
    a->send("one\ntwo\n");
    expect(*b, "guest-1: one");
    expect(*b, "guest-1: two");
    expect_quiet(*b);
}

TEST_CASE("relay: text is relayed byte for byte (UTF-8 not validated)") {
    Server s = start_server(kServer);
    auto a = join(s);
    auto b = join(s);
    expect(*a, "* guest-2 joined");
    const std::string text("caf\xc3\xa9 \xff\xfe \x1b[31m \x01", 15);
    a->send(text + "\n");
    expect(*b, "guest-1: " + text);
}

TEST_CASE("relay: /nick renames for all; bad, taken and own nicks are errors to the sender") {
    Server s = start_server(kServer);
    auto a = join(s);
    auto b = join(s);
    expect(*a, "* guest-2 joined");
    a->send("/nick Bob\n");
    expect(*a, "* guest-1 is now Bob");
    expect(*b, "* guest-1 is now Bob");
    for (const char* bad :
         {"/nick a b", "/nick", "/nick ", "/nick 12345678901234567", "/nick x.y", "/nick Bob"}) {
        INFO(bad);
        a->send(std::string(bad) + "\n");
        const auto reply = a->line();
        REQUIRE(reply.has_value());
        CHECK(reply->rfind("* error: ", 0) == 0);
    }
    b->send("/nick bob\n");  // uniqueness ignores case
    const auto taken = b->line();
    REQUIRE(taken.has_value());
    CHECK(taken->rfind("* error: ", 0) == 0);
    b->send("/nick 1234567890123456\n");  // 16 characters: fine
    expect(*b, "* guest-2 is now 1234567890123456");
    expect(*a, "* guest-2 is now 1234567890123456");
    expect_quiet(*a);
    a->send("after\n");
    expect(*b, "Bob: after");
}

TEST_CASE("relay: an error line quotes the sender's control bytes escaped, never raw") {
    Server s = start_server(kServer);
    auto a = join(s);
    a->send("/nick \x1b]0;owned\x07\n");
    expect(*a, "* error: invalid nick \\x1b]0;owned\\x07 (1-16 of A-Z a-z 0-9 _ -, no spaces)");
    a->send(
        "/msg \xe2\x80\xae"
        "evil hi\n");
    expect(*a, "* error: no such user \\u202eevil");
}

TEST_CASE("relay: /msg reaches only NAME; errors for unknown NAME and missing TEXT") {
    Server s = start_server(kServer);
    auto a = join(s);
    auto b = join(s);
    auto c = join(s);
    expect(*a, "* guest-2 joined");
    expect(*a, "* guest-3 joined");
    expect(*b, "* guest-3 joined");
    a->send("/msg guest-2 just for you\n");
    expect(*b, "guest-1 (private): just for you");
    expect_quiet(*a);
    expect_quiet(*c, 50ms);
    a->send("/msg nobody hi\n");
    expect(*a, "* error: no such user nobody");
    a->send("/msg guest-2\n");
    expect(*a, "* error: usage: /msg NAME TEXT");
    expect_quiet(*b);
}

TEST_CASE("relay: /who lists nicks in join order; /help lines start with '* '") {
    Server s = start_server(kServer);
    auto a = join(s);
    auto b = join(s);
    auto c = join(s);
    expect(*b, "* guest-3 joined");
    b->send("/nick zed\n");
    expect(*b, "* guest-2 is now zed");
    c->send("/who\n");
    expect(*c, "* guest-2 is now zed");
    expect(*c, "* online: guest-1, zed, guest-3");
    c->send("/help\n");
    int help_lines = 0;
    std::string help;
    while (auto l = c->line(300ms)) {
        CHECK(l->rfind("* ", 0) == 0);
        help += *l + "\n";
        ++help_lines;
    }
    CHECK(help_lines >= 1);
    for (const char* cmd : {"/nick", "/msg", "/who", "/quit", "/help"}) {
        CHECK(help.find(cmd) != std::string::npos);
    }
}

TEST_CASE("relay: /quit — bye then closed; others read left") {
    Server s = start_server(kServer);
    auto a = join(s);
    auto b = join(s);
    expect(*a, "* guest-2 joined");
    b->send("/quit\n");
    CHECK(b->until_eof() == "* bye\n");
    expect(*a, "* guest-2 left");
}

TEST_CASE("relay: EOF — others read left; what was queued is flushed first") {
    Server s = start_server(kServer);
    auto a = join(s);
    auto b = join(s);
    expect(*a, "* guest-2 joined");
    b->send("/who\nlast words\n");
    b->shutdown_write();
    CHECK(b->until_eof() == "* online: guest-1, guest-2\n");
    expect(*a, "guest-2: last words");
    expect(*a, "* guest-2 left");
}

TEST_CASE("relay: unknown command is reported by its word alone") {
    Server s = start_server(kServer);
    auto a = join(s);
    a->send("/foo bar baz\n");
    expect(*a, "* error: unknown command /foo");
}

TEST_CASE("relay: 4096 bytes accepted, 4097 rejected: error, close, others read left") {
    Server s = start_server(kServer);
    auto a = join(s);
    auto b = join(s);
    expect(*a, "* guest-2 joined");
    const std::string max(4096, 'm');
    a->send(max + "\n");
    expect(*b, "guest-1: " + max);
    a->send(max + "\r\n");  // the '\r' does not count
    expect(*b, "guest-1: " + max);
    a->send(std::string(4097, 'x') + "\nmore after it\n");
    CHECK(a->until_eof() == "* error: line too long (max 4096 bytes)\n");
    expect(*b, "* guest-1 left");
    expect_quiet(*b);
}

TEST_CASE("relay: more than 4096 bytes without a newline is rejected at once") {
    Server s = start_server(kServer);
    auto a = join(s);
    a->send(std::string(5000, 'x'));  // no newline, and we keep the socket open
    CHECK(a->until_eof(3000ms) == "* error: line too long (max 4096 bytes)\n");
}

TEST_CASE("relay: server full — extra clients get the error; no guest number is spent") {
    Server s = start_server(kServer, {"--max-clients", "2"});
    auto a = join(s, "* welcome guest-1 (1 online)");
    auto b = join(s, "* welcome guest-2 (2 online)");
    Conn extra(s.port);
    CHECK(extra.until_eof() == "* error: server full\n");
    b->close();
    expect(*a, "* guest-2 joined");
    expect(*a, "* guest-2 left");
    join(s, "* welcome guest-3 (2 online)");
}

// A close with unread input makes the kernel send RST, not FIN, and throw
// away what it had not yet sent: the server reads such input away first.
// The server is stopped (SIGSTOP) while the input arrives, so that it is
// certainly waiting, unread, when the server next looks at the socket.
TEST_CASE("relay: refused newcomers whose input already waits get the error and FIN, not RST") {
    Server s = start_server(kServer, {"--max-clients", "1"});
    auto a = join(s, "* welcome guest-1 (1 online)");
    s.proc.signal(SIGSTOP);
    std::vector<std::unique_ptr<Conn>> extra;
    for (int i = 0; i < 8; ++i) {  // more than are closed politely at once (4)
        extra.push_back(std::make_unique<Conn>(s.port));
        extra.back()->send(std::string(2000, 'h') + "\n");  // `printf ... | nc`
    }
    s.proc.signal(SIGCONT);
    for (std::size_t i = 0; i < extra.size(); ++i) {
        INFO("newcomer " << i);
        CHECK(extra[i]->until_eof() == "* error: server full\n");
        CHECK(extra[i]->read_error() == 0);  // FIN, not ECONNRESET
    }
    a->send("/who\n");
    expect(*a, "* online: guest-1");
}

TEST_CASE("relay: a leaving client closed at its deadline with input unread gets FIN, not RST") {
    Server s = start_server(kServer);
    auto a = join(s);
    auto b = join(s);
    expect(*a, "* guest-2 joined");
    // b reads nothing for now: lines wait for it in the server's socket
    // buffers (and queue), then its bye.
    const std::string line = "guest-1: " + std::string(1000, 'l');
    std::string bulk;
    for (int i = 0; i < 200; ++i)
        bulk += line.substr(9) + "\n";
    a->send(bulk);
    // Wait until at least 50 of a's lines have reached b's socket before b
    // says /quit: the relay may read a and b in either order.
    REQUIRE(eventually([&] {
        int queued = 0;
        return ::ioctl(b->fd(), SIOCINQ, &queued) == 0 &&
               queued >= static_cast<int>(50 * (line.size() + 1));
    }));
    b->send("/quit\n");
    expect(*a, "* guest-2 left");  // the server has read the /quit
    // Stopped, the server cannot read what b sends now; once b's 2 s to
    // close have passed it wakes to more than one read's worth (64 KiB)
    // unread and closes b. Time must pass with the server stopped: a sleep.
    s.proc.signal(SIGSTOP);
    // 96 KiB: more than one read, less than the server's receive buffer
    // (about 128 KiB here), so that all of it has arrived (our send queue
    // is empty) before the server runs again: nothing is still in flight.
    b->send(std::string(96 * 1024, 'j'));
    REQUIRE(eventually([&] {
        int unacked = -1;
        return ::ioctl(b->fd(), SIOCOUTQ, &unacked) == 0 && unacked == 0;
    }));
    std::this_thread::sleep_for(2500ms);
    s.proc.signal(SIGCONT);
    // What the server had handed to the kernel still arrives, then FIN. An
    // RST would throw that away, and the reader would see ECONNRESET.
    const std::string got = b->until_eof(5000ms);
    CHECK(b->read_error() == 0);
    std::istringstream in(got);
    std::size_t lines = 0;
    for (std::string l; std::getline(in, l) && l == line;)
        ++lines;
    INFO("complete lines received: " << lines);
    CHECK(lines >= 50);  // far more than that fits in the socket buffers
}

TEST_CASE("relay: --max-clients out of range is a usage error; --help lists it") {
    for (const char* bad : {"0", STEP2_RELAY_TOO_MANY, "x"}) {
        Child c({repo_path(kServer), "--max-clients", bad, "--port", "0"});
        CHECK(c.wait() == 2);
        CHECK(c.stderr_text().find("usage: server") != std::string::npos);
    }
    Child help({repo_path(kServer), "--help"});
    CHECK(help.out().until_eof().find("--max-clients N") != std::string::npos);
    CHECK(help.wait() == 0);
}

TEST_CASE("relay: 20 clients x 200 messages — each receiver gets every other's, once, in order") {
    Server s = start_server(kServer);
    constexpr int kClients = 20, kMessages = 200;
    std::vector<std::unique_ptr<Conn>> clients;
    for (int i = 0; i < kClients; ++i)
        clients.push_back(join(s));
    for (int i = 0; i < kClients; ++i) {  // everyone who joined after i
        for (int j = i + 1; j < kClients; ++j) {
            REQUIRE(clients[i]->line() == "* guest-" + std::to_string(j + 1) + " joined");
        }
    }
    std::vector<std::thread> writers;
    for (int i = 0; i < kClients; ++i) {
        writers.emplace_back([&, i] {
            std::string all;
            for (int m = 0; m < kMessages; ++m)
                all += "msg " + std::to_string(m) + "\n";
            // In several writes, so lines from different senders interleave.
            for (std::size_t at = 0; at < all.size(); at += 700)
                clients[i]->send(all.substr(at, 700));
        });
    }
    for (auto& w : writers)
        w.join();
    for (int i = 0; i < kClients; ++i) {
        std::map<std::string, int> next;  // sender nick -> next expected message
        int received = 0;
        bool ok = true;
        while (received < (kClients - 1) * kMessages) {
            const auto l = clients[i]->line(10000ms);
            if (!l) break;
            const auto colon = l->find(": msg ");
            if (colon == std::string::npos) {
                ok = false;
                break;
            }
            const std::string from = l->substr(0, colon);
            const int m = std::stoi(l->substr(colon + 6));
            if (from == "guest-" + std::to_string(i + 1) || m != next[from]) ok = false;
            next[from] = m + 1;
            ++received;
        }
        INFO("receiver " << i);
        CHECK(ok);
        CHECK(received == (kClients - 1) * kMessages);
        CHECK(next.size() == kClients - 1);
        expect_quiet(*clients[i], 20ms);  // nothing duplicated
    }
}

TEST_CASE("relay: a client that never reads is dropped (too slow); the others finish") {
    Server s = start_server(kServer);
    auto slow = join(s);  // guest-1: never reads again
    constexpr int kTalkers = 5;
    constexpr std::size_t kPerTalker = 6 << 20;  // 5 x 6 MiB = 30 MiB
    const std::string line = std::string(1000, 'z') + "\n";
    const int lines_each = static_cast<int>(kPerTalker / line.size());
    std::vector<std::unique_ptr<Conn>> talkers;
    for (int i = 0; i < kTalkers; ++i)
        talkers.push_back(join(s));
    for (int i = 0; i < kTalkers; ++i) {
        for (int j = i + 1; j < kTalkers; ++j)
            REQUIRE(talkers[i]->line().has_value());
    }
    std::vector<int> got(kTalkers, 0);
    std::vector<int> too_slow(kTalkers, 0);
    std::atomic<bool> send_failed{false};
    std::vector<std::thread> threads;
    for (int i = 0; i < kTalkers; ++i) {
        threads.emplace_back([&, i] {
            try {
                for (int n = 0; n < lines_each; n += 64) {
                    std::string batch;
                    for (int k = 0; k < 64 && n + k < lines_each; ++k)
                        batch += line;
                    talkers[i]->send(batch);
                }
            } catch (const std::exception&) {
                send_failed = true;  // the server dropped a talker
            }
        });
        threads.emplace_back([&, i] {
            while (got[i] < (kTalkers - 1) * lines_each) {
                const auto l = talkers[i]->line(20000ms);
                if (!l) return;
                if (*l == "* guest-1 left (too slow)") {
                    ++too_slow[i];
                } else if (l->size() > 1000) {
                    ++got[i];
                }
            }
        });
    }
    for (auto& t : threads)
        t.join();
    CHECK_FALSE(send_failed);
    for (int i = 0; i < kTalkers; ++i) {
        CHECK(got[i] == (kTalkers - 1) * lines_each);
        CHECK(too_slow[i] == 1);
    }
    // The slow client's connection was closed by the server.
    CHECK(eventually([&] { return s.proc.stderr_text().find("too slow") != std::string::npos; }));
}

TEST_CASE("relay: 1100 connection attempts — never more than --max-clients admitted, then fine") {
    Server s = start_server(kServer, STEP2_RELAY_MAX_1000);  // select: default --max-clients 1000
    const int fds_before = settled_fd_count(s.proc.pid());
    std::vector<std::unique_ptr<Conn>> conns;
    for (int i = 0; i < 1100; ++i)
        conns.push_back(std::make_unique<Conn>(s.port));
    int welcomed = 0, full = 0, other = 0;
    for (auto& c : conns) {
        const auto first = c->line(10000ms);
        if (first && first->rfind("* welcome ", 0) == 0) {
            ++welcomed;
        } else if (first == "* error: server full") {
            ++full;
        } else {
            ++other;
        }
    }
    CHECK(welcomed == 1000);
    CHECK(full == 100);
    CHECK(other == 0);
    CHECK(s.proc.running());
    conns.clear();
    // Once they are gone, a new pair chats as usual. Wait until the server has
    // closed every one of them: "(1 online)" below counts on it.
    REQUIRE(eventually([&] { return open_fd_count(s.proc.pid()) == fds_before; }, 30000ms));
    auto a = join(s, "* welcome guest-1001 (1 online)");
    auto b = join(s, "* welcome guest-1002 (2 online)");
    expect(*a, "* guest-1002 joined");
    b->send("still here\n");
    expect(*a, "guest-1002: still here");
}

TEST_CASE("relay: 20 clients that reset do not stop a 21st; no descriptor leaks") {
    Server s = start_server(kServer);
    const int fds_before = settled_fd_count(s.proc.pid());
    for (int i = 0; i < 20; ++i) {
        Conn rude(s.port);
        REQUIRE(rude.line().has_value());
        rude.send("half a li");
        rude.reset();
    }
    auto a = join(s);
    auto b = join(s);
    // The server may notice the last resets after a joined: skip "left" lines.
    std::optional<std::string> l;
    while ((l = a->line()) && l->find(" left") != std::string::npos) {
    }
    CHECK(l == "* guest-22 joined");
    a->send("hello\n");
    expect(*b, "guest-21: hello");
    a->close();
    b->close();
    CHECK(eventually([&] { return open_fd_count(s.proc.pid()) == fds_before; }));
}

TEST_CASE("relay: a reset client is reported as left to the others") {
    Server s = start_server(kServer);
    auto a = join(s);
    auto b = join(s);
    expect(*a, "* guest-2 joined");
    b->reset();
    expect(*a, "* guest-2 left");
}

TEST_CASE("relay: SIGTERM — every client reads 'server shutting down', exit 0") {
    Server s = start_server(kServer);
    auto a = join(s);
    auto b = join(s);
    expect(*a, "* guest-2 joined");
    b->send("unread input stays unread");
    std::this_thread::sleep_for(100ms);
    s.proc.signal(SIGTERM);
    CHECK(a->until_eof(3000ms) == "* server shutting down\n");
    CHECK(b->until_eof(3000ms) == "* server shutting down\n");
    CHECK(s.proc.wait(3000ms) == 0);
    CHECK_FALSE(can_connect(s.port));
}

TEST_CASE("relay: SIGINT with a client that never reads still exits 0 within about 2 s") {
    Server s = start_server(kServer);
    auto a = join(s);
    auto b = join(s);
    // Fill b's queue without reading it: a sends 600 KiB of lines.
    const std::string chunk = std::string(1000, 'q') + "\n";
    std::string bulk;
    for (int i = 0; i < 600; ++i)
        bulk += chunk;
    a->send(bulk);
    std::this_thread::sleep_for(200ms);
    const auto start = std::chrono::steady_clock::now();
    s.proc.signal(SIGINT);
    CHECK(s.proc.wait(4000ms) == 0);
    CHECK(std::chrono::steady_clock::now() - start < 3000ms);
}

TEST_CASE("relay: SIGHUP reopens --log-file") {
    TempPath log("log");
    const std::string moved = log.str() + ".1";
    Server s = start_server(kServer, {"--log-file", log.str()});
    join(s);
    REQUIRE(eventually(
        [&] { return read_file(log.str()).find("connected as guest-1") != std::string::npos; }));
    REQUIRE(::rename(log.str().c_str(), moved.c_str()) == 0);
    s.proc.signal(SIGHUP);
    REQUIRE(eventually(
        [&] { return read_file(log.str()).find("log file reopened") != std::string::npos; }));
    join(s);
    CHECK(eventually(
        [&] { return read_file(log.str()).find("connected as guest-2") != std::string::npos; }));
    CHECK(read_file(moved).find("guest-2") == std::string::npos);
    ::unlink(moved.c_str());
}

TEST_CASE("relay: a port in use is exit 1 naming bind and the address") {
    Server s = start_server(kServer);
    Child second({repo_path(kServer), "--bind", "127.0.0.1", "--port", std::to_string(s.port)});
    CHECK(second.wait() == 1);
    CHECK(second.stderr_text() ==
          "bind 127.0.0.1:" + std::to_string(s.port) + ": Address already in use\n");
}

TEST_CASE("relay: out of descriptors (EMFILE) — logged, no busy loop, serving goes on") {
    Child proc(
        {"prlimit", "--nofile=24:24", repo_path(kServer), "--port", "0", "--bind", "127.0.0.1"});
    const auto first = proc.out().line();
    REQUIRE(first.has_value());
    const int port = std::stoi(first->substr(first->rfind(':') + 1));
    std::vector<std::unique_ptr<Conn>> conns;
    for (int i = 0; i < 30; ++i)
        conns.push_back(std::make_unique<Conn>(port));
    REQUIRE(eventually([&] {
        return proc.stderr_text().find("accept: Too many open files") != std::string::npos;
    }));
    // The queued connections keep the listener readable: a naive loop spins.
    const double before = cpu_seconds(proc.pid());
    std::this_thread::sleep_for(1000ms);
    CHECK(cpu_seconds(proc.pid()) - before < 0.3);  // a spinning loop uses ~1 s
    CHECK(proc.running());
    // The admitted clients chat meanwhile.
    const auto welcome = conns[0]->line();
    REQUIRE(welcome.has_value());
    CHECK(*welcome == "* welcome guest-1 (1 online)");
    // Free descriptors: the waiting connections are accepted.
    for (int i = 0; i < 15; ++i)
        conns[i].reset();
    CHECK(conns[29]->line(5000ms).value_or("").rfind("* welcome guest-", 0) == 0);
}

namespace {
// A shell command that opens descriptors 3..last, then runs the relay.
std::vector<std::string> relay_with_open_fds(int last) {
    return {"bash", "-c",
            "for i in $(seq 3 " + std::to_string(last) +
                "); do eval \"exec $i</dev/null\"; done; " + "exec " + repo_path(kServer) +
                " --port 0 --bind 127.0.0.1"};
}
}  // namespace

#ifndef STEP2_RELAY_EPOLL  // select() only: server_epoll has no FD_SETSIZE ceiling
TEST_CASE("relay: a descriptor at or above FD_SETSIZE never reaches FD_SET") {
    // Started with descriptors 3..1015 taken, the relay's own (signal pipe,
    // listener) are 1016-1018 and clients get 1019, 1020 ... 1024.
    Child proc(relay_with_open_fds(1015));
    const auto first = proc.out().line();
    REQUIRE(first.has_value());
    const int port = std::stoi(first->substr(first->rfind(':') + 1));
    std::vector<std::unique_ptr<Conn>> conns;
    int welcomed = 0, closed_at_once = 0;
    for (int i = 0; i < 8; ++i) {
        conns.push_back(std::make_unique<Conn>(port));
        const auto l = conns.back()->line(10000ms);
        if (l && l->rfind("* welcome ", 0) == 0) ++welcomed;
        // Closed without a word: EOF, not a timeout.
        if (!l && conns.back()->eof()) ++closed_at_once;
    }
    CHECK(welcomed == 5);  // descriptors 1019-1023
    CHECK(closed_at_once == 3);
    CHECK(
        eventually([&] { return proc.stderr_text().find(">= FD_SETSIZE") != std::string::npos; }));
    CHECK(proc.running());
}

TEST_CASE("relay: started with too many descriptors open, it refuses to start (exit 1)") {
    Child proc(relay_with_open_fds(1030));
    CHECK(proc.wait() == 1);
    CHECK(proc.stderr_text().find("FD_SETSIZE") != std::string::npos);
}
#endif

// --- Flow control, leaving clients, shutdown under load (issue: no client
// can slow the room). docs/02-multiclient.md#the-slow-reader
namespace {

// Reads one connection to its end on its own thread: every line, and how
// the stream ended (a clean FIN, or a reset).
class Drain {
  public:
    // `chunk` bytes per read, `pause` between reads (0: as fast as it can);
    // `keep`: keep every line (else only the last).
    Drain(int fd, std::size_t chunk = 65536, Duration pause = 0ms, Duration limit = 20000ms,
          bool keep = true)
        : keep_(keep), thread_([this, fd, chunk, pause, limit] { run(fd, chunk, pause, limit); }) {}
    ~Drain() { join(); }
    void join() {
        if (thread_.joinable()) thread_.join();
    }
    std::vector<std::string> lines;
    std::string last;        // the last line
    bool clean_eof = false;  // recv() returned 0 (FIN), not an error (RST)
    int error = 0;
    std::atomic<std::size_t> count{0};

  private:
    void run(int fd, std::size_t chunk, Duration pause, Duration limit) {
        const auto deadline = std::chrono::steady_clock::now() + limit;
        std::string buf;
        std::vector<char> block(chunk);
        while (std::chrono::steady_clock::now() < deadline) {
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, 100) <= 0) continue;
            const ssize_t n = ::recv(fd, block.data(), block.size(), 0);
            if (n == 0) {
                clean_eof = true;
                break;
            }
            if (n < 0) {
                if (errno == EINTR || errno == EAGAIN) continue;
                error = errno;
                break;
            }
            buf.append(block.data(), static_cast<std::size_t>(n));
            std::size_t start = 0;
            for (std::size_t nl; (nl = buf.find('\n', start)) != std::string::npos;
                 start = nl + 1) {
                last = buf.substr(start, nl - start);
                if (keep_) lines.push_back(last);
                ++count;
            }
            buf.erase(0, start);
            if (pause > 0ms) std::this_thread::sleep_for(pause);
        }
    }
    bool keep_;
    std::thread thread_;
};

// Lines "<sender>: <tag> <n>" of each sender arrive once, in order, and all of
// them (`per_sender` each, from everyone in `senders`).
bool every_line_once_in_order(const std::vector<std::string>& lines,
                              const std::vector<std::string>& senders, int per_sender) {
    std::map<std::string, int> next;
    for (const std::string& l : lines) {
        const auto colon = l.find(": n");
        if (colon == std::string::npos || l.rfind("* ", 0) == 0) continue;
        const std::string from = l.substr(0, colon);
        const int n = std::stoi(l.substr(colon + 3));
        if (n != next[from]) return false;
        next[from] = n + 1;
    }
    for (const std::string& s : senders) {
        if (next[s] != per_sender) return false;
    }
    return next.size() == senders.size();
}

// n lines "n<i> xxx...\n" of `size` bytes each.
std::string numbered_lines(int from, int n, std::size_t size) {
    std::string out;
    for (int i = from; i < from + n; ++i) {
        std::string l = "n" + std::to_string(i) + " ";
        l.resize(size - 1, 'x');
        out += l + "\n";
    }
    return out;
}

int count_of(const std::vector<std::string>& lines, const std::string& line) {
    return static_cast<int>(std::count(lines.begin(), lines.end(), line));
}

}  // namespace

TEST_CASE("relay: a client that has left no longer counts: the newcomer is welcomed at once") {
    Server s = start_server(kServer, {"--max-clients", "5"});
    std::vector<std::unique_ptr<Conn>> c;
    for (int i = 0; i < 5; ++i)
        c.push_back(join(s));
    for (int i = 0; i < 5; ++i) {
        for (int j = i + 1; j < 5; ++j)
            expect(*c[i], "* guest-" + std::to_string(j + 1) + " joined");
    }
    c[0]->send("/quit\n");  // and it keeps its socket open: the server waits for its FIN
    expect(*c[0], "* bye");
    for (int i = 1; i < 5; ++i)
        expect(*c[i], "* guest-1 left");
    Conn newcomer(s.port);
    CHECK(newcomer.line(1000ms) == "* welcome guest-6 (5 online)");  // not "server full"
    newcomer.send("/who\n");
    CHECK(newcomer.line() == "* online: guest-2, guest-3, guest-4, guest-5, guest-6");
}

TEST_CASE(
    "relay: a burst — 30 clients write 64 KiB each at once; nobody is dropped, nothing lost") {
    Server s = start_server(kServer);
    constexpr int kClients = 30, kLines = 640;  // 640 x 100 bytes = 64,000 bytes each
    std::vector<std::unique_ptr<Conn>> c;
    std::vector<std::string> nicks;
    for (int i = 0; i < kClients; ++i) {
        c.push_back(join(s));
        nicks.push_back("guest-" + std::to_string(i + 1));
    }
    std::vector<std::unique_ptr<Drain>> readers;
    for (int i = 0; i < kClients; ++i)
        readers.push_back(std::make_unique<Drain>(c[i]->fd()));
    const std::string burst = numbered_lines(0, kLines, 100);
    std::vector<std::thread> writers;
    for (int i = 0; i < kClients; ++i)
        writers.emplace_back([&, i] {
            try {
                c[i]->send(burst);
            } catch (const std::exception&) {  // dropped: the readers' checks say so
            }
        });
    for (auto& w : writers)
        w.join();
    const std::size_t due = (kClients - 1) * kLines;
    CHECK(eventually(
        [&] {
            return std::all_of(readers.begin(), readers.end(),
                               [&](const auto& r) { return r->count >= due; });
        },
        20000ms));
    for (auto& c_ : c)
        c_->shutdown_write();  // each leaves; the readers then see the server's FIN
    for (int i = 0; i < kClients; ++i) {
        readers[i]->join();
        std::vector<std::string> others = nicks;
        others.erase(others.begin() + i);
        INFO("reader " << nicks[i]);
        CHECK(every_line_once_in_order(readers[i]->lines, others, kLines));
        for (const std::string& l : readers[i]->lines)
            CHECK(l.find("(too slow)") == std::string::npos);
    }
    CHECK(s.proc.stderr_text().find("too slow") == std::string::npos);
}

TEST_CASE(
    "relay: flooders and a slow-draining reader — the honest get every line; the slow one is "
    "dropped") {
    Server s = start_server(kServer);
    auto slow = join(s);  // guest-1: takes 4 KiB every 20 ms (200 KB/s)
    // 4 x 40,000 x 100 bytes = 16 MB to the slow one: more than the kernel's
    // buffers on both sides (up to about 10 MB on loopback) and our 1 MiB.
    constexpr int kFlooders = 4, kLines = 40000;
    std::vector<std::unique_ptr<Conn>> f;
    std::vector<std::string> nicks;
    for (int i = 0; i < kFlooders; ++i) {
        f.push_back(join(s));
        nicks.push_back("guest-" + std::to_string(i + 2));
    }
    Drain slow_reader(slow->fd(), 65536, 100ms, 20000ms);
    std::vector<std::unique_ptr<Drain>> readers;
    for (int i = 0; i < kFlooders; ++i)
        readers.push_back(std::make_unique<Drain>(f[i]->fd()));
    std::vector<std::thread> writers;
    for (int i = 0; i < kFlooders; ++i) {
        writers.emplace_back([&, i] {
            try {
                for (int n = 0; n < kLines; n += 64)
                    f[i]->send(numbered_lines(n, std::min(64, kLines - n), 100));
            } catch (const std::exception&) {  // dropped: the readers' checks say so
            }
        });
    }
    for (auto& w : writers)
        w.join();
    const std::size_t due = (kFlooders - 1) * kLines;
    CHECK(eventually(
        [&] {
            return std::all_of(readers.begin(), readers.end(),
                               [&](const auto& r) { return r->count >= due; });
        },
        20000ms));
    for (auto& c_ : f)
        c_->shutdown_write();
    for (int i = 0; i < kFlooders; ++i) {
        readers[i]->join();
        std::vector<std::string> others = nicks;
        others.erase(others.begin() + i);
        INFO("reader " << nicks[i]);
        CHECK(every_line_once_in_order(readers[i]->lines, others, kLines));
        // The slow reader could not keep up: it was dropped, and said so once.
        CHECK(count_of(readers[i]->lines, "* guest-1 left (too slow)") == 1);
    }
    slow_reader.join();
    CHECK(slow_reader.count < std::size_t{kFlooders} * kLines);  // it never caught up ...
    const bool closed = slow_reader.clean_eof || slow_reader.error != 0;
    CHECK(closed);  // ... and was closed
}

TEST_CASE("relay: SIGTERM while clients flood — each reads 'server shutting down' last, then FIN") {
    Server s = start_server(kServer);
    constexpr int kClients = 5;
    std::vector<std::unique_ptr<Conn>> c;
    for (int i = 0; i < kClients; ++i)
        c.push_back(join(s));
    std::vector<std::unique_ptr<Drain>> readers;
    for (int i = 0; i < kClients; ++i)
        readers.push_back(std::make_unique<Drain>(c[i]->fd(), 65536, 0ms, 10000ms, false));
    std::atomic<bool> stop{false};
    std::vector<std::thread> writers;
    for (int i = 0; i < kClients; ++i) {
        writers.emplace_back([&, i] {
            try {
                for (int n = 0; !stop; n += 64)
                    c[i]->send(numbered_lines(n, 64, 100));
            } catch (const std::exception&) {  // the server has closed: EPIPE
            }
        });
    }
    // Flooding: every client has received lines from the others.
    CHECK(eventually(
        [&] {
            return std::all_of(readers.begin(), readers.end(),
                               [&](const auto& r) { return r->count > 1000; });
        },
        10000ms));
    s.proc.signal(SIGTERM);
    for (int i = 0; i < kClients; ++i) {
        readers[i]->join();
        INFO("client " << i << ": recv error " << readers[i]->error);
        CHECK(readers[i]->last == "* server shutting down");
        CHECK(readers[i]->clean_eof);  // FIN, not a reset
    }
    stop = true;
    for (auto& w : writers)
        w.join();
    CHECK(s.proc.wait(3000ms) == 0);
    INFO(s.proc.stderr_text());
    CHECK(s.proc.stderr_text().find(" left") == std::string::npos);
}
