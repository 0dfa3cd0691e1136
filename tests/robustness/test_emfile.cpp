// tests/robustness/test_emfile.cpp: out of descriptors (EMFILE).
//
// With RLIMIT_NOFILE at 64 and 200 connection attempts, accept() fails with
// EMFILE while the kernel keeps completing handshakes into the accept queue.
// The listening socket then stays readable: a level-triggered loop
// (select, poll, epoll without EPOLLET) that just retries wakes at once,
// forever, at 100% CPU. The servers must instead log it once per burst,
// keep serving the clients they have, and accept again once others leave.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "doctest.h"
#include "harness.hpp"

using namespace test;

namespace {

struct Target {
    std::string binary;
    std::vector<std::string> args;
    bool tls;
};

const Target kSelect{"step2_multiclient/server", {}, false};
const Target kEpoll{"step2_multiclient/server_epoll", {}, false};
// Clients stuck before their handshake keep their descriptor for the whole test.
const Target kTls{"step3_tls/server", {"--handshake-timeout", "60"}, true};

bool exists(const std::string& path) {
    return ::access(path.c_str(), F_OK) == 0;
}

// The server under `ulimit -n limit`, as a user would start it from a shell.
struct Limited {
    Child proc;
    int port = 0;
};
Limited start_limited(const Target& t, int limit) {
    std::string cmd = "ulimit -n " + std::to_string(limit) + " && exec " + repo_path(t.binary) +
                      " --port 0 --bind 127.0.0.1";
    for (const std::string& a : t.args)
        cmd += " " + a;
    Limited s{Child({"bash", "-c", cmd}), 0};
    const auto line = s.proc.out().line();
    REQUIRE(line.has_value());
    REQUIRE(line->rfind("listening on ", 0) == 0);
    s.port = std::stoi(line->substr(line->rfind(':') + 1));
    return s;
}

// A non-blocking connect: the kernel finishes the handshake (or queues the
// SYN) without waiting for accept(), so 200 of them never block the test.
common::Fd dial_nonblocking(int port) {
    common::Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    REQUIRE(fd);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const int rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
    REQUIRE((rc == 0 || errno == EINPROGRESS));
    return fd;
}

// One chat client that gets its welcome, over TCP or TLS (the project's own
// stage 3 client, which verifies the certificate), then leaves.
bool served(const Target& t, int port) {
    if (!t.tls) {
        try {
            Conn c(port);
            const auto welcome = c.line(2000ms);
            return welcome && welcome->rfind("* welcome guest-", 0) == 0;
        } catch (const std::exception&) {
            return false;
        }
    }
    Child client({repo_path("step3_tls/client"), "127.0.0.1", std::to_string(port)});
    const std::string out = client.out().until_eof(3000ms);
    return client.wait(3000ms) == 0 && out.rfind("* welcome guest-", 0) == 0;
}

std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1))
        ++n;
    return n;
}

const std::string kEmfile = "Too many open files";

// 200 attempts against 64 descriptors: no spin, still serving, recovers.
void survives_exhaustion(const Target& t) {
    INFO("server: " << t.binary);
    Limited s = start_limited(t, 64);
    REQUIRE(served(t, s.port));                           // lazily opened descriptors appear now
    const int baseline = settled_fd_count(s.proc.pid());  // that client's is closed again

    std::vector<common::Fd> attempts;
    for (int i = 0; i < 200; ++i)
        attempts.push_back(dial_nonblocking(s.port));
    REQUIRE(eventually([&] { return s.proc.stderr_text().find(kEmfile) != std::string::npos; }));

    // Out of descriptors with connections still queued: it must sleep.
    const double cpu_before = cpu_seconds(s.proc.pid());
    ::usleep(1'000'000);
    const double busy = cpu_seconds(s.proc.pid()) - cpu_before;
    CHECK(busy < 0.3);  // a spinning loop burns about 1 s of CPU in 1 s
    MESSAGE(t.binary << ": " << busy << " s of CPU in 1 s at EMFILE");
    CHECK(s.proc.running());

    // The clients it has are still served (plain TCP: two of them chat).
    if (!t.tls) {
        Conn first(std::move(attempts[0])), second(std::move(attempts[1]));
        REQUIRE(first.line().value_or("").rfind("* welcome guest-2 ", 0) == 0);
        first.send("still served\n");
        bool relayed = false;
        while (auto line = second.line(3000ms)) {
            if (*line == "guest-2: still served") {
                relayed = true;
                break;
            }
        }
        CHECK(relayed);
    }

    // Everyone leaves: the server accepts again and serves a newcomer.
    attempts.clear();
    CHECK(eventually([&] { return served(t, s.port); }, 10000ms));
    CHECK(eventually([&] { return open_fd_count(s.proc.pid()) == baseline; }, 10000ms));
    s.proc.signal(SIGTERM);
    CHECK(s.proc.wait(3000ms) == 0);
}

// The log says it once per burst, not every time accept() is retried.
void logs_once_per_burst(const Target& t) {
    INFO("server: " << t.binary);
    Limited s = start_limited(t, 64);
    std::vector<common::Fd> attempts;
    for (int i = 0; i < 200; ++i)
        attempts.push_back(dial_nonblocking(s.port));
    REQUIRE(eventually([&] { return s.proc.stderr_text().find(kEmfile) != std::string::npos; }));
    ::usleep(1'500'000);  // the burst goes on: clients wait in the queue
    const std::string log = s.proc.stderr_text();
    CHECK_MESSAGE(count(log, kEmfile) == 1, t.binary << " logged EMFILE " << count(log, kEmfile)
                                                     << " times in 1.5 s of one burst");
    s.proc.signal(SIGTERM);
    CHECK(s.proc.wait(3000ms) == 0);
}

}  // namespace

TEST_CASE("EMFILE, select relay: no spin, keeps serving, accepts again after others leave") {
    survives_exhaustion(kSelect);
}

TEST_CASE("EMFILE, TLS relay: no spin, keeps serving, accepts again after others leave") {
    survives_exhaustion(kTls);
}

TEST_CASE("EMFILE, epoll relay: no spin, keeps serving, accepts again after others leave") {
    if (!exists(repo_path("step2_multiclient/server_epoll.cpp"))) {
        MESSAGE("no server_epoll in this tree: skipped");
        return;
    }
    survives_exhaustion(kEpoll);
}

TEST_CASE("EMFILE, select relay: logged once per burst") {
    logs_once_per_burst(kSelect);
}

TEST_CASE("EMFILE, TLS relay: logged once per burst") {
    logs_once_per_burst(kTls);
}

TEST_CASE("EMFILE, epoll relay: logged once per burst") {
    if (!exists(repo_path("step2_multiclient/server_epoll.cpp"))) {
        MESSAGE("no server_epoll in this tree: skipped");
        return;
    }
    logs_once_per_burst(kEpoll);
}
