// Stage 1 integration tests: the real server and client binaries on loopback.
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "doctest.h"
#include "harness.hpp"

using namespace test;

namespace {
const char* const kServer = "step1_echo/server";
const char* const kClient = "step1_echo/client";
}  // namespace

TEST_CASE("stage 1: a short line comes back exactly") {
    Server s = start_server(kServer);
    CHECK(s.host == "127.0.0.1");
    CHECK(s.port > 0);
    Conn c(s.port);
    c.send("hello\n");
    CHECK(c.line() == "hello");
}

TEST_CASE("stage 1: binary bytes, NULs included, are echoed unchanged") {
    Server s = start_server(kServer);
    Conn c(s.port);
    std::string data("a\0b\0\xff\x01\r\n\x7f", 9);
    c.send(data);
    CHECK(c.exact(data.size()) == data);
}

TEST_CASE("stage 1: 8 MiB round trip while writing and reading concurrently") {
    Server s = start_server(kServer);
    Conn c(s.port);
    const std::string data = random_bytes(8 << 20, 3);
    const std::string back = round_trip(c, data);
    CHECK(back.size() == data.size());
    CHECK(back == data);
}

TEST_CASE("stage 1: half-close — the server sends the rest, then closes") {
    Server s = start_server(kServer);
    Conn c(s.port);
    c.send("last words\n");
    c.shutdown_write();  // FIN from us; we can still read
    CHECK(c.until_eof() == "last words\n");
    CHECK(eventually(
        [&] { return s.proc.stderr_text().find(" closed, 11 bytes") != std::string::npos; }));
}

TEST_CASE("stage 1: the server is iterative; the second client waits in the accept queue") {
    Server s = start_server(kServer);
    Conn first(s.port);
    first.send("one\n");
    REQUIRE(first.line() == "one");

    // connect() returns at once: the kernel finished the handshake for us.
    Conn second(s.port);
    second.send("two\n");
    CHECK(second.available(300ms).empty());  // nobody accept()ed it yet

    first.shutdown_write();
    CHECK(first.until_eof().empty());
    CHECK(second.line() == "two");  // served once the first left
}

TEST_CASE("stage 1 client: in a pipe, prints exactly what it sent") {
    Server s = start_server(kServer);
    TempPath in("in"), out("out");
    write_file(in.str(), "a\nb\n");
    Child client({repo_path(kClient), "127.0.0.1", std::to_string(s.port)},
                 SpawnOptions{false, in.str(), out.str(), {}});
    CHECK(client.wait(5000ms) == 0);
    CHECK(read_file(out.str()) == "a\nb\n");
}

TEST_CASE("stage 1 client: 10 MiB of random bytes come back identical") {
    Server s = start_server(kServer);
    TempPath in("in"), out("out");
    const std::string data = random_bytes(10 << 20, 11);
    write_file(in.str(), data);
    Child client({repo_path(kClient), "127.0.0.1", std::to_string(s.port)},
                 SpawnOptions{false, in.str(), out.str(), {}});
    CHECK(client.wait(30000ms) == 0);
    CHECK(read_file(out.str()) == data);
}

TEST_CASE("stage 1 client: connection refused is one line on stderr and exit 1") {
    Server s = start_server(kServer);
    const int port = s.port;
    s.proc.signal(SIGTERM);
    REQUIRE(s.proc.wait() == 0);
    Child client({repo_path(kClient), "127.0.0.1", std::to_string(port)});
    CHECK(client.wait() == 1);
    const std::string err = client.stderr_text();
    CHECK(err == "connect 127.0.0.1:" + std::to_string(port) + ": Connection refused\n");
}

TEST_CASE("stage 1: usage errors exit 2 with the usage on stderr; --help exits 0") {
    for (auto args : std::vector<std::vector<std::string>>{
             {"--port", "nope"}, {"--port", "70000"}, {"--bogus"}, {"extra"}}) {
        std::vector<std::string> argv = {repo_path(kServer)};
        argv.insert(argv.end(), args.begin(), args.end());
        Child c(argv);
        CHECK(c.wait() == 2);
        CHECK(c.stderr_text().find("usage: server") != std::string::npos);
    }
    Child help({repo_path(kServer), "--help"});
    CHECK(help.out().until_eof().find("--port PORT") != std::string::npos);
    CHECK(help.wait() == 0);
    Child client_usage({repo_path(kClient), "a", "1", "extra"});
    CHECK(client_usage.wait() == 2);
}

TEST_CASE("stage 1: a port in use is exit 1 and names bind and the address") {
    Server s = start_server(kServer);
    Child second({repo_path(kServer), "--bind", "127.0.0.1", "--port", std::to_string(s.port)});
    CHECK(second.wait() == 1);
    CHECK(second.stderr_text() ==
          "bind 127.0.0.1:" + std::to_string(s.port) + ": Address already in use\n");
}

TEST_CASE("stage 1: SIGTERM with an idle client connected exits 0 within 2 s") {
    Server s = start_server(kServer);
    Conn idle(s.port);
    idle.send("x");
    REQUIRE(idle.exact(1) == "x");
    s.proc.signal(SIGTERM);
    CHECK(s.proc.wait(2000ms) == 0);
    CHECK(idle.until_eof(2000ms).empty());  // the server closed our connection
}

TEST_CASE("stage 1: SIGINT with nobody connected exits 0") {
    Server s = start_server(kServer);
    s.proc.signal(SIGINT);
    CHECK(s.proc.wait(2000ms) == 0);
}

TEST_CASE("stage 1: a client that resets leaves the server serving") {
    Server s = start_server(kServer);
    {
        Conn rude(s.port);
        rude.send("half a li");
        REQUIRE(rude.exact(9) == "half a li");
        rude.reset();  // SO_LINGER 0: RST instead of FIN
    }
    Conn polite(s.port);
    polite.send("still here\n");
    CHECK(polite.line() == "still here");
}

namespace {
int queued(int fd, unsigned long request) {  // SIOCINQ / SIOCOUTQ: bytes in a socket queue
    int n = -1;
    return ::ioctl(fd, request, &n) == 0 ? n : -1;
}
int tcp_state(int fd) {
    tcp_info info{};
    socklen_t len = sizeof info;
    return ::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 ? info.tcpi_state : -1;
}
}  // namespace

// send() to a peer that has reset raises SIGPIPE, which kills a process
// unless it is ignored (or MSG_NOSIGNAL given): one rude client would end
// the server. The reset must come after the server has the client's FIN
// (CLOSE_WAIT), while the server still has echo to write: then its next
// send() fails with EPIPE, the case that raises the signal.
TEST_CASE("stage 1: sending to a peer that has reset does not kill the server (SIGPIPE)") {
    Server s = start_server(kServer);
    {
        Conn rude(s.port);
        // Fill the pipe: we never read, so the echo fills our receive
        // buffer and the server's send buffer, and the server waits to
        // write. Each piece must reach the server (our send queue empty).
        // The server waits to write once the bytes that reached it stay
        // unread (its Recv-Q in ss) for a whole second: a merely busy server
        // reads them well before that.
        const std::string piece(16 * 1024, 'p');
        const std::string port = std::to_string(s.port);
        auto server_unread = [&] {
            std::string out;
            shell("ss -tnH state established '( sport = :" + port + " )'", &out);
            return out.empty() ? 0 : std::stoi(out);
        };
        bool blocked = false;
        for (int i = 0; i < 4096 && !blocked; ++i) {
            rude.send(piece);
            REQUIRE(eventually([&] { return queued(rude.fd(), SIOCOUTQ) == 0; }));
            blocked = !eventually([&] { return server_unread() == 0; }, 1000ms);
        }
        REQUIRE(blocked);
        rude.shutdown_write();  // FIN: the server's side is now in CLOSE_WAIT
        REQUIRE(eventually([&] { return tcp_state(rude.fd()) == TCP_FIN_WAIT2; }));
        rude.reset();  // RST; the server's next send() gets EPIPE
    }
    // Either it logged the failed send, or SIGPIPE killed it (exit 141).
    REQUIRE(eventually([&] {
        return s.proc.stderr_text().find("Broken pipe") != std::string::npos || !s.proc.running();
    }));
    REQUIRE_MESSAGE(s.proc.running(), "the server died: " << s.proc.wait(0ms).value_or(-1));
    Conn next(s.port);
    next.send("still serving\n");
    CHECK(next.line() == "still serving");
}

TEST_CASE("stage 1: open descriptors back to baseline after 200 connections") {
    Server s = start_server(kServer);
    {
        Conn warm(s.port);  // let lazily opened descriptors appear first
        warm.send("w");
        REQUIRE(warm.exact(1) == "w");
    }
    REQUIRE(eventually(
        [&] { return s.proc.stderr_text().find(" closed, 1 bytes") != std::string::npos; }));
    const int baseline = open_fd_count(s.proc.pid());
    REQUIRE(baseline > 0);
    for (int i = 0; i < 200; ++i) {
        Conn c(s.port);
        if (i % 3 == 0) {
            c.send("ping\n");
            CHECK(c.line() == "ping");
        } else if (i % 3 == 1) {
            c.reset();
        }  // else: close without sending anything
    }
    Conn last(s.port);
    last.send("end\n");
    REQUIRE(last.line() == "end");
    last.shutdown_write();
    REQUIRE(last.until_eof().empty());
    CHECK(eventually([&] { return open_fd_count(s.proc.pid()) == baseline; }));
}

TEST_CASE(
    "stage 1: out of descriptors (EMFILE) is logged once, does not spin, and SIGTERM still works") {
    // Once started, the server may open no more descriptors than it has
    // (stdio, listener, signal pipe): every accept() fails with EMFILE. The
    // limit is lowered after start-up, not before (ulimit -n 6): under
    // UBSan the first log line needs a spare pipe for its vptr check.
    Server s = start_server(kServer);
    Child& server = s.proc;
    // Its log line comes after the stdout line: let it be written first.
    REQUIRE(
        eventually([&] { return server.stderr_text().find("listening on") != std::string::npos; }));
    // The lowest free descriptor number is what accept() would take.
    // Taken once the count has settled: a sanitizer's runtime may hold one
    // for a moment at start-up.
    settled_fd_count(server.pid());
    int lowest_free = 0;
    while (::access(("/proc/" + std::to_string(server.pid()) + "/fd/" + std::to_string(lowest_free))
                        .c_str(),
                    F_OK) == 0)
        ++lowest_free;
    REQUIRE(lowest_free >= 6);
    INFO("server stderr: " << server.stderr_text());
    const std::string limit = std::to_string(lowest_free);
    REQUIRE(shell("prlimit --pid " + std::to_string(server.pid()) + " --nofile=" + limit + ":" +
                  limit) == 0);
    Conn a(s.port), b(s.port);  // the kernel completes both handshakes; accept() cannot take them
    REQUIRE(eventually([&] {
        return server.stderr_text().find("accept: Too many open files") != std::string::npos;
    }));
    const double before = cpu_seconds(server.pid());
    ::usleep(1'000'000);
    CHECK(cpu_seconds(server.pid()) - before < 0.3);  // a spinning loop would burn ~1 s here
    const std::string log = server.stderr_text();
    const auto first = log.find("accept: Too many open files");
    CHECK(first != std::string::npos);
    CHECK(log.find("accept: Too many open files", first + 1) == std::string::npos);
    server.signal(SIGTERM);
    CHECK(server.wait(2000ms) == 0);
}

TEST_CASE("stage 1: a fatal error goes to stderr and, with --log-file, to the log too") {
    Server s = start_server(kServer);
    TempPath log("log");
    Child second({repo_path(kServer), "--bind", "127.0.0.1", "--port", std::to_string(s.port),
                  "--log-file", log.str()});
    CHECK(second.wait() == 1);
    const std::string message =
        "bind 127.0.0.1:" + std::to_string(s.port) + ": Address already in use";
    CHECK(second.stderr_text() == message + "\n");
    CHECK(read_file(log.str()).find("fatal: " + message) != std::string::npos);
}
