// SPEC.md "Stage 2: server_fork": one child process per client; the parent
// closes its copy of the client socket, the child closes the listening socket.
#include <dirent.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "spec.hpp"

using namespace spec;

namespace {

const char* const kFork = "step2_multiclient/server_fork";

// The socket descriptors a process holds ("socket:[INODE]" links).
std::vector<std::string> sockets_of(pid_t pid) {
    std::vector<std::string> out;
    const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        std::error_code ec;
        const std::string target = std::filesystem::read_symlink(entry.path(), ec).string();
        if (!ec && target.rfind("socket:", 0) == 0) out.push_back(target);
    }
    return out;
}

std::vector<pid_t> children_of(pid_t parent) {
    std::vector<pid_t> out;
    std::ifstream in("/proc/" + std::to_string(parent) + "/task/" + std::to_string(parent) +
                     "/children");
    pid_t p;
    while (in >> p)
        out.push_back(p);
    return out;
}

}  // namespace

TEST_CASE(
    "server_fork: one child process per client; the parent closes its copy of the client "
    "socket, the child closes the listening socket") {
    Server s = start_server(kFork);
    const auto parent_sockets = sockets_of(s.proc.pid());
    REQUIRE(parent_sockets.size() == 1);  // the listener
    std::vector<std::unique_ptr<Conn>> conns;
    for (int i = 0; i < 3; ++i) {
        conns.push_back(std::make_unique<Conn>(s.port));
        conns.back()->send("x\n");
        REQUIRE(conns.back()->line() == "x");
    }
    // The parent closes its copy after fork() and each child closes the
    // listener, each in its own time: the echo can come back before either
    // close, so wait for the state (with a deadline) instead of sampling it.
    std::vector<pid_t> kids;
    CHECK(eventually([&] {
        kids = children_of(s.proc.pid());
        return kids.size() == 3;
    }));
    CHECK(
        eventually([&] { return sockets_of(s.proc.pid()) == parent_sockets; }));  // no client kept
    for (pid_t kid : kids) {
        std::vector<std::string> theirs;
        CHECK(eventually([&] {
            theirs = sockets_of(kid);
            return theirs.size() == 1;  // its client only
        }));
        if (!theirs.empty()) CHECK(theirs.front() != parent_sockets.front());
    }
}
