// SPEC.md "Stage 1: echo", the client lines of "Stage 2", and the client
// lines of "Details that settle the edge cases".
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "spec.hpp"

using namespace spec;

namespace {

const char* const kEcho = "step1_echo/server";
const char* const kRelay = "step2_multiclient/server";

// The client's side of a connection as the server names it: "127.0.0.1:PORT".
std::string local_name(const Conn& c) {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    REQUIRE(::getsockname(c.fd(), reinterpret_cast<sockaddr*>(&a), &len) == 0);
    return "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
}

}  // namespace

TEST_CASE(
    "details: stage 1: each connection's log line names the peer and the byte count "
    "(`127.0.0.1:50312 closed, 12 bytes`)") {
    Server s = start_server(kEcho);
    std::string peer;
    {
        Conn c(s.port);
        peer = local_name(c);
        c.send("hello world\n");
        CHECK(c.line() == "hello world");
        c.shutdown_write();
        CHECK(c.until_eof().empty());
    }
    const std::string expected = " " + peer + " closed, 12 bytes\n";
    CHECK(eventually([&] { return s.proc.stderr_text().find(expected) != std::string::npos; }));
}

TEST_CASE(
    "stage 1: the server sends back exactly the bytes it receives, any amount, and closes "
    "after the client half-closes (socat)") {
    Server s = start_server(kEcho);
    TempPath in("spec-in"), out("spec-out");
    write_file(in.str(), random_bytes(3 * 1024 * 1024, 7));
    // socat half-closes at the file's end and waits (up to 5 s) for the server's FIN.
    const int rc = shell("socat -t 5 - TCP:127.0.0.1:" + std::to_string(s.port) + " < " + in.str() +
                             " > " + out.str(),
                         nullptr, 30000ms);
    CHECK(rc == 0);
    CHECK(read_file(out.str()) == read_file(in.str()));
}

TEST_CASE("clients: -h/--help prints usage on stdout and exits 0; bad usage exits 2 on stderr") {
    for (const auto& client : every_client()) {
        INFO(client);
        Child help(with_binary(client, {"--help"}));
        const std::string out = help.out().until_eof();
        CHECK(help.wait() == 0);
        CHECK(out.rfind("usage: client", 0) == 0);
        CHECK(help.stderr_text().empty());
        for (const std::vector<std::string>& bad :
             std::vector<std::vector<std::string>>{{"--bogus"},
                                                   {"127.0.0.1", "port"},
                                                   {"127.0.0.1", "70000"},
                                                   {"a", "1", "extra"},
                                                   {"--timeout", "0"},
                                                   {"--timeout", "soon"}}) {
            INFO(bad.front());
            Child c(with_binary(client, bad));
            CHECK(c.out().until_eof().empty());
            CHECK(c.wait() == 2);
            CHECK(c.stderr_text().find("usage: client") != std::string::npos);
        }
    }
}

TEST_CASE(
    "details: clients of every stage: connection refused is one line on stderr and exit 1 "
    "(IPv4, IPv6, a name)") {
    const std::string port = std::to_string(free_port());
    for (const auto& client : every_client()) {
        for (const char* host : {"127.0.0.1", "::1", "localhost"}) {
            INFO(client << " " << host);
            Child c(with_binary(client, {host, port}));
            CHECK(c.wait() == 1);
            const std::string err = c.stderr_text();
            CHECK(err.find("Connection refused") != std::string::npos);
            CHECK(std::count(err.begin(), err.end(), '\n') == 1);
            CHECK(err.back() == '\n');
            CHECK(c.out().until_eof().empty());
        }
    }
}

TEST_CASE(
    "details: clients of every stage: the server closing the connection is exit 0 (stdin "
    "still open)") {
    const std::pair<const char*, const char*> pairs[] = {
        {kEcho, "step1_echo/client"},
        {kRelay, "step2_multiclient/client"},
    };
    for (const auto& pair : pairs) {
        const std::string server = pair.first, client = pair.second;
        INFO(client);
        Server s = start_server(server);
        Child c(with_binary(client, {"127.0.0.1", std::to_string(s.port)}),
                SpawnOptions{true, {}, {}, {}});
        const std::string hi = "hi\n";
        REQUIRE(::write(c.stdin_fd(), hi.data(), hi.size()) == 3);
        CHECK(c.out().line().has_value());  // the echo, or the welcome
        s.proc.signal(SIGTERM);
        CHECK(s.proc.wait(3000ms) == 0);
        CHECK(c.wait(3000ms) == 0);  // stdin is still open: the close alone ends it
    }
}

TEST_CASE("stage 2 client: at stdin EOF it half-closes and exits 0 after the server closes") {
    Server s = start_server(kRelay);
    auto a = join(s.port, "* welcome guest-1 (1 online)");
    TempPath in("spec-in");
    write_file(in.str(), "one\ntwo");  // the last line has no newline: still relayed
    Child c(with_binary("step2_multiclient/client", {"127.0.0.1", std::to_string(s.port)}),
            SpawnOptions{false, in.str(), "", {}});
    CHECK(c.out().line() == "* welcome guest-2 (2 online)");
    CHECK(c.wait(3000ms) == 0);
    CHECK(a->line() == "* guest-2 joined");
    CHECK(a->line() == "guest-2: one");
    CHECK(a->line() == "guest-2: two");
    CHECK(a->line() == "* guest-2 left");
}

TEST_CASE("clients: `client [HOST [PORT]]` defaults to localhost and the stage port") {
    std::vector<std::pair<std::string, int>> clients = {{"step1_echo/client", 7001},
                                                        {"step2_multiclient/client", 7002}};
    if (every_client().size() > 2) clients.push_back({"step3_tls/client", 7003});
    for (const auto& entry : clients) {
        const std::string client = entry.first;
        const int port = entry.second;
        INFO(client);
        if (is_listening(port)) {
            MESSAGE("port " << port << " is in use here: cannot check the default");
            continue;
        }
        Child c(with_binary(client, {}));
        CHECK(c.wait() == 1);
        CHECK(c.stderr_text() ==
              "connect localhost:" + std::to_string(port) + ": Connection refused\n");
        Child host_only(with_binary(client, {"127.0.0.1"}));
        CHECK(host_only.wait() == 1);
        CHECK(host_only.stderr_text() ==
              "connect 127.0.0.1:" + std::to_string(port) + ": Connection refused\n");
    }
}

namespace {
// A listener whose accept queue is full: listen(fd, 0) queues one finished
// handshake, and nothing accepts it; further SYNs are dropped, so a connect()
// to it waits while the kernel resends SYN (1 s, 3 s, 7 s ... over 2 min).
// Loopback only, and nothing leaves the machine.
struct FullListener {
    Listener listener{0};
    std::vector<common::Fd> fillers;
    FullListener() {
        for (int i = 0; i < 8; ++i) {
            common::Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
            sockaddr_in a{};
            a.sin_family = AF_INET;
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            a.sin_port = htons(static_cast<uint16_t>(listener.port()));
            ::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
            pollfd p{fd.get(), POLLOUT, 0};
            const bool done = ::poll(&p, 1, 300) == 1;
            fillers.push_back(std::move(fd));
            if (!done) return;  // this one's SYN went unanswered: the queue is full
        }
        FAIL("the accept queue never filled up");
    }
};
}  // namespace

TEST_CASE(
    "clients: --timeout bounds connect: a server that never answers the SYN is one line "
    "naming connect and exit 1") {
    FullListener full;
    const std::string port = std::to_string(full.listener.port());
    for (const auto& client : every_client()) {
        INFO(client);
        const auto start = std::chrono::steady_clock::now();
        Child c(with_binary(client, {"127.0.0.1", port, "--timeout", "1"}));
        CHECK(c.wait(10000ms) == 1);
        const auto took = std::chrono::steady_clock::now() - start;
        CHECK(c.stderr_text() == "connect 127.0.0.1:" + port + ": timed out after 1 s\n");
        CHECK(took >= 900ms);
        CHECK(took < 5000ms);
        CHECK(c.out().until_eof(1000ms).empty());
    }
}
