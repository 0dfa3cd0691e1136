// Stage 1 interop: real tools a learner would use talk to our binaries.
#include <string>

#include "doctest.h"
#include "harness.hpp"

using namespace test;

TEST_CASE("interop: nc (netcat-openbsd) gets its line echoed, -N half-closes") {
    Server s = start_server("step1_echo/server");
    std::string out;
    int rc = shell(
        "printf 'hello from nc\\n' | timeout 5 nc -N 127.0.0.1 " + std::to_string(s.port), &out);
    CHECK(rc == 0);
    CHECK(out == "hello from nc\n");
}

TEST_CASE("interop: socat sends 1 MiB through the server and gets it back") {
    Server s = start_server("step1_echo/server");
    TempPath in("in"), out("out");
    write_file(in.str(), random_bytes(1 << 20, 5));
    int rc = shell("timeout 10 socat -t 5 -u OPEN:" + in.str() +
                       " - | timeout 10 socat -t 5 - TCP:127.0.0.1:" + std::to_string(s.port) +
                       " > " + out.str(),
                   nullptr, 15000ms);
    CHECK(rc == 0);
    CHECK(read_file(out.str()) == read_file(in.str()));
}

TEST_CASE("interop: our client talks to a socat echo server") {
    const int port = free_port();
    Child echo({"socat", "TCP-LISTEN:" + std::to_string(port) + ",bind=127.0.0.1,reuseaddr,fork",
                "EXEC:cat"});
    REQUIRE(eventually([&] { return is_listening(port); }, 3000ms));
    TempPath in("in"), out("out");
    write_file(in.str(), "through socat\n");
    Child client({repo_path("step1_echo/client"), "127.0.0.1", std::to_string(port)},
                 SpawnOptions{false, in.str(), out.str(), {}});
    CHECK(client.wait(5000ms) == 0);
    CHECK(read_file(out.str()) == "through socat\n");
}
