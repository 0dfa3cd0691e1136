// Stage 2 integration tests: server_fork, the chat client, and interop with nc.
#include <signal.h>
#include <sys/socket.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "doctest.h"
#include "harness.hpp"

using namespace test;

namespace {

const char* const kFork = "step2_multiclient/server_fork";
const char* const kServer = "step2_multiclient/server";
const char* const kClient = "step2_multiclient/client";

struct ProcInfo {
    pid_t pid;
    char state;  // R, S, Z ...
};

// The children of `parent`, from /proc/PID/stat ("pid (comm) state ppid ...").
std::vector<ProcInfo> children_of(pid_t parent) {
    std::vector<ProcInfo> out;
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
        const std::string name = entry.path().filename();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        std::ifstream in(entry.path() / "stat");
        std::string stat;
        if (!std::getline(in, stat)) continue;
        const auto close_paren = stat.rfind(')');
        if (close_paren == std::string::npos) continue;
        std::istringstream rest(stat.substr(close_paren + 2));
        char state = 0;
        pid_t ppid = 0;
        rest >> state >> ppid;
        if (ppid == parent) out.push_back({static_cast<pid_t>(std::stol(name)), state});
    }
    return out;
}

int zombies_of(pid_t parent) {
    int n = 0;
    for (const auto& c : children_of(parent))
        n += c.state == 'Z';
    return n;
}

}  // namespace

TEST_CASE("server_fork: 20 clients at once, each echoed; no zombies afterwards") {
    Server s = start_server(kFork);
    std::vector<std::unique_ptr<Conn>> conns;
    for (int i = 0; i < 20; ++i)
        conns.push_back(std::make_unique<Conn>(s.port));
    // All 20 are served while all 20 are connected: one child each.
    for (int i = 0; i < 20; ++i) {
        conns[i]->send("client " + std::to_string(i) + "\n");
    }
    for (int i = 0; i < 20; ++i) {
        CHECK(conns[i]->line() == "client " + std::to_string(i));
    }
    // The children exist (they echoed); wait rather than sample /proc once.
    CHECK(eventually([&] { return children_of(s.proc.pid()).size() == 20; }));
    for (auto& c : conns)
        c->shutdown_write();
    for (auto& c : conns)
        CHECK(c->until_eof().empty());  // the child closed: FIN
    conns.clear();
    CHECK(eventually([&] { return children_of(s.proc.pid()).empty(); }));
    CHECK(zombies_of(s.proc.pid()) == 0);
    CHECK(eventually(
        [&] { return s.proc.stderr_text().find(" closed, 9 bytes") != std::string::npos; }));
}

TEST_CASE("server_fork: many short clients in a row leave no zombies") {
    Server s = start_server(kFork);
    for (int i = 0; i < 50; ++i) {
        Conn c(s.port);
        c.send("x\n");
        REQUIRE(c.line() == "x");
        c.shutdown_write();
        REQUIRE(c.until_eof().empty());
    }
    CHECK(eventually([&] { return children_of(s.proc.pid()).empty(); }));
}

TEST_CASE(
    "server_fork: the parent closed its copy — a client's connection ends when its child exits") {
    Server s = start_server(kFork);
    Conn c(s.port);
    c.send("bye\n");
    REQUIRE(c.line() == "bye");
    // Kill the child: if the parent still held the socket, no FIN would come.
    std::vector<ProcInfo> kids;
    REQUIRE(eventually([&] {
        kids = children_of(s.proc.pid());
        return kids.size() == 1;
    }));
    ::kill(kids[0].pid, SIGKILL);
    CHECK(c.until_eof(3000ms).empty());
    CHECK(c.eof());  // EOF came, not just the deadline
    CHECK(c.available(10ms).empty());
    CHECK(eventually([&] { return children_of(s.proc.pid()).empty(); }));
    CHECK(s.proc.running());
}

TEST_CASE("server_fork: SIGTERM ends its children, reaps them, exits 0") {
    Server s = start_server(kFork);
    std::vector<std::unique_ptr<Conn>> conns;
    for (int i = 0; i < 3; ++i) {
        conns.push_back(std::make_unique<Conn>(s.port));
        conns.back()->send("hi\n");
        REQUIRE(conns.back()->line() == "hi");
    }
    std::vector<pid_t> kids;
    REQUIRE(eventually([&] {
        kids.clear();
        for (const auto& k : children_of(s.proc.pid()))
            kids.push_back(k.pid);
        return kids.size() == 3;
    }));
    s.proc.signal(SIGTERM);
    CHECK(s.proc.wait(4000ms) == 0);
    for (auto& c : conns)
        CHECK(c->until_eof(2000ms).empty());
    for (pid_t k : kids) {
        // Reaped (gone), not left running under init.
        CHECK(eventually([&] { return !std::filesystem::exists("/proc/" + std::to_string(k)); }));
    }
}

TEST_CASE("server_fork: binary data and half-close as in stage 1") {
    Server s = start_server(kFork);
    Conn c(s.port);
    const std::string data = random_bytes(1 << 20, 7);
    const std::string back = round_trip(c, data, 10000ms);
    CHECK(back == data);
}

TEST_CASE("client: prints server lines with control bytes escaped") {
    Server s = start_server(kServer);
    auto peer = std::make_unique<Conn>(s.port);
    REQUIRE(peer->line().has_value());
    SpawnOptions o;
    o.pipe_stdin = true;
    Child client({repo_path(kClient), "127.0.0.1", std::to_string(s.port)}, o);
    CHECK(client.out().line() == "* welcome guest-2 (2 online)");
    REQUIRE(peer->line() == "* guest-2 joined");
    peer->send(
        "\x1b[2J\x1b]0;pwned\x07 tab\there \xc2\x9b"
        "31m caf\xc3\xa9\r\n");
    CHECK(client.out().line() ==
          "guest-1: \\x1b[2J\\x1b]0;pwned\\x07 tab\there \\xc2\\x9b31m caf\xc3\xa9");
    // And what the client types goes out as lines.
    const std::string typed = "typed line\n";
    REQUIRE(::write(client.stdin_fd(), typed.data(), typed.size()) ==
            static_cast<ssize_t>(typed.size()));
    CHECK(peer->line() == "guest-2: typed line");
    // stdin EOF: half-close; the server sees EOF and closes; exit 0.
    client.close_stdin();
    CHECK(peer->line() == "* guest-2 left");
    CHECK(client.wait() == 0);
}

TEST_CASE("client: in a pipe, /quit ends the session with exit 0") {
    Server s = start_server(kServer);
    TempPath in("in"), out("out");
    write_file(in.str(), "/who\n/quit\n");
    Child client({repo_path(kClient), "127.0.0.1", std::to_string(s.port)},
                 SpawnOptions{false, in.str(), out.str(), {}});
    CHECK(client.wait() == 0);
    CHECK(read_file(out.str()) == "* welcome guest-1 (1 online)\n* online: guest-1\n* bye\n");
}

TEST_CASE("client: exits 0 when the server shuts down") {
    Server s = start_server(kServer);
    SpawnOptions o;
    o.pipe_stdin = true;  // stdin stays open: only the server can end it
    Child client({repo_path(kClient), "127.0.0.1", std::to_string(s.port)}, o);
    REQUIRE(client.out().line() == "* welcome guest-1 (1 online)");
    s.proc.signal(SIGTERM);
    CHECK(client.out().line() == "* server shutting down");
    CHECK(client.wait() == 0);
    CHECK(s.proc.wait() == 0);
}

TEST_CASE("client: connection refused is one line on stderr and exit 1") {
    Server s = start_server(kServer);
    const int port = s.port;
    s.proc.signal(SIGTERM);
    REQUIRE(s.proc.wait() == 0);
    Child client({repo_path(kClient), "127.0.0.1", std::to_string(port)});
    CHECK(client.wait() == 1);
    CHECK(client.stderr_text() ==
          "connect 127.0.0.1:" + std::to_string(port) + ": Connection refused\n");
}

TEST_CASE("interop: three nc clients chat through the relay") {
    Server s = start_server(kServer);
    SpawnOptions o;
    o.pipe_stdin = true;
    std::vector<std::unique_ptr<Child>> nc;
    for (int i = 0; i < 3; ++i) {
        nc.push_back(std::make_unique<Child>(
            std::vector<std::string>{"nc", "127.0.0.1", std::to_string(s.port)}, o));
        REQUIRE(nc.back()->out().line() == "* welcome guest-" + std::to_string(i + 1) + " (" +
                                               std::to_string(i + 1) + " online)");
    }
    auto type = [&](int i, const std::string& text) {
        REQUIRE(::write(nc[i]->stdin_fd(), text.data(), text.size()) ==
                static_cast<ssize_t>(text.size()));
    };
    CHECK(nc[0]->out().line() == "* guest-2 joined");
    CHECK(nc[0]->out().line() == "* guest-3 joined");
    CHECK(nc[1]->out().line() == "* guest-3 joined");
    type(0, "/nick alice\n");
    for (int i = 0; i < 3; ++i)
        CHECK(nc[i]->out().line() == "* guest-1 is now alice");
    type(1, "hi alice\n");
    CHECK(nc[0]->out().line() == "guest-2: hi alice");
    CHECK(nc[2]->out().line() == "guest-2: hi alice");
    type(2, "/msg alice psst\n");
    CHECK(nc[0]->out().line() == "guest-3 (private): psst");
    type(2, "/quit\n");
    CHECK(nc[2]->out().line() == "* bye");
    CHECK(nc[0]->out().line() == "* guest-3 left");
    CHECK(nc[1]->out().line() == "* guest-3 left");
}
