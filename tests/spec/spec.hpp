// tests/spec/spec.hpp: what the SPEC.md tests share. Each TEST_CASE in this
// suite is named after the SPEC.md sentence it checks, section by section, and
// talks to the real binaries the way a user with nc and a shell would.
#pragma once

#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "doctest.h"
#include "harness.hpp"

namespace spec {

using namespace test;

// Every server SPEC.md's "Every server" section applies to that this checkout
// has (stage 3 only once it is built and `make certs` has run; any further
// server a stage adds, such as server_epoll, when it is built).
inline std::vector<std::string> every_server() {
    std::vector<std::string> out;
    for (const char* s :
         {"step1_echo/server", "step2_multiclient/server", "step2_multiclient/server_fork",
          "step2_multiclient/server_epoll", "step3_tls/server"}) {
        const bool exists = ::access(repo_path(s).c_str(), X_OK) == 0;
        if (std::string(s).find("epoll") != std::string::npos) {  // a further server, when built
            if (exists) out.push_back(s);
            continue;
        }
        if (std::string(s).rfind("step3", 0) == 0) {
            if (exists && ::access(repo_path("step3_tls/certs/server.key").c_str(), R_OK) == 0)
                out.push_back(s);
            continue;
        }
        REQUIRE_MESSAGE(exists, repo_path(s) << " is missing; build it first");
        out.push_back(s);
    }
    return out;
}

// The clients; stage 3's only for what happens before TLS (usage, refused).
inline std::vector<std::string> every_client() {
    std::vector<std::string> out = {"step1_echo/client", "step2_multiclient/client"};
    if (::access(repo_path("step3_tls/client").c_str(), X_OK) == 0)
        out.push_back("step3_tls/client");
    return out;
}

inline std::vector<std::string> with_binary(const std::string& binary,
                                            std::vector<std::string> args) {
    args.insert(args.begin(), repo_path(binary));
    return args;
}

// A chat client on the relay whose welcome line was read and checked.
inline std::unique_ptr<Conn> join(int port, const std::string& welcome) {
    auto c = std::make_unique<Conn>(port);
    CHECK(c->line() == welcome);
    return c;
}

}  // namespace spec
