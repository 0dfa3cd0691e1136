// Stage 1, the steps a learner builds in order, seen from outside: the
// listening line, the accept queue emptying, a restart on a port whose last
// connection is in TIME_WAIT. `make grade STAGE=1` runs these with the rest.
#include <signal.h>

#include <string>

#include "doctest.h"
#include "harness.hpp"

using namespace test;

namespace {
const char* const kServer = "step1_echo/server";

// Connections waiting in the accept queue of the listener on 127.0.0.1:port
// (for a listening socket, ss shows that queue's length as Recv-Q).
int accept_queue(int port) {
    std::string out;
    shell("ss -ltnH 'sport = :" + std::to_string(port) + "'", &out);
    // "LISTEN 0 16 127.0.0.1:PORT 0.0.0.0:*": state, Recv-Q, Send-Q ...
    const auto space = out.find_first_of(" \t");
    if (space == std::string::npos) return -1;
    return std::atoi(out.c_str() + out.find_first_not_of(" \t", space));
}

// What a failure of the accept check reports: the listener's queue, or that it is gone.
std::string queue_report(int port) {
    const int queued = accept_queue(port);
    const std::string where = "127.0.0.1:" + std::to_string(port);
    if (queued < 0) return "ss shows no listener on " + where + " (the server exited or closed it)";
    return "ss shows " + std::to_string(queued) + " connection(s) in the accept queue of " + where;
}

bool in_time_wait(int port) {
    std::string out;
    shell("ss -tanH state time-wait 'sport = :" + std::to_string(port) + "'", &out);
    return !out.empty();
}
}  // namespace

TEST_CASE("stage 1: prints `listening on 127.0.0.1:PORT` and listens there") {
    Server s = start_server(kServer);
    CHECK(s.host == "127.0.0.1");
    CHECK(s.port > 0);
    CHECK(is_listening(s.port));
}

TEST_CASE("stage 1: accepts: a connection leaves the accept queue") {
    Server s = start_server(kServer);
    Conn c(s.port);              // the kernel completes the handshake and queues it
    INFO(queue_report(s.port));  // evaluated at a failure: what ss shows then
    CHECK_MESSAGE(eventually([&] { return accept_queue(s.port) == 0; }, 3000ms),
                  "within 3 s, accept() takes the connection off the accept queue (ss: Recv-Q 0)");
}

TEST_CASE("stage 1: starts again at once on a port whose last connection is in TIME_WAIT") {
    Server s = start_server(kServer);
    const int port = s.port;
    {
        Conn c(port);
        c.send("x");
        REQUIRE(c.exact(1) == "x");
        // The server closes first, so its side of this connection, on `port`,
        // goes through TIME_WAIT once we close ours.
        s.proc.signal(SIGTERM);
        REQUIRE(s.proc.wait(2000ms) == 0);
        REQUIRE(c.until_eof(2000ms).empty());
    }
    REQUIRE(eventually([&] { return in_time_wait(port); }));
    Server again = start_server(kServer, {"--port", std::to_string(port)});
    CHECK(again.port == port);
}

TEST_CASE("stage 1: a client that reads late still gets every byte back (partial sends)") {
    Server s = start_server(kServer);
    Conn c(s.port);
    const std::string data = random_bytes(8 << 20, 7);
    // A slow reader: the server's send() finds the buffers full and takes
    // only part of what it is given, then nothing at all, until we read.
    const std::string back = round_trip(c, data, 20000ms, 300ms);
    CHECK(back.size() == data.size());
    CHECK(back == data);
}

TEST_CASE("stage 1: a client gone before its echo costs only itself (SIGPIPE)") {
    Server s = start_server(kServer);
    Conn first(s.port);  // keeps the iterative server busy
    first.send("x");
    REQUIRE(first.exact(1) == "x");
    {
        // Waiting in the accept queue, it sends a line, FIN, then RST: the
        // server's side is in CLOSE_WAIT when the RST comes, so the server's
        // echo of that line fails with EPIPE, and SIGPIPE unless suppressed.
        Conn gone(s.port);
        gone.send("never read\n");
        gone.shutdown_write();
        gone.reset();
    }
    first.shutdown_write();
    REQUIRE(first.until_eof().empty());
    INFO("server stderr: " << s.proc.stderr_text());
    Conn next(s.port);
    next.send("still here\n");
    CHECK(next.line() == "still here");
}
