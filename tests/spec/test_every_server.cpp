// SPEC.md "Every server" and the server lines of "Details that settle the
// edge cases": options, the `listening on` line, usage and bind errors,
// SIGINT/SIGTERM. Run against every server binary of the checkout.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include <string>

#include "spec.hpp"

using namespace spec;

namespace {

// A listener of the test's own on 127.0.0.1 (port 0 = any free port).
common::Fd listen_on_loopback(int port = 0) {
    common::Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(fd);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd.get(), 1) == 0);
    return fd;
}

int port_of(const common::Fd& fd) {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    REQUIRE(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len) == 0);
    return ntohs(a.sin_port);
}

// The first stdout line of a server started with `args`, and its stdout
// until it exits after SIGTERM (to see that the line came exactly once).
struct Started {
    std::string line;
    std::string rest_of_stdout;
    std::optional<int> code;
};
Started start_and_stop(const std::string& binary, std::vector<std::string> args) {
    Child c(with_binary(binary, std::move(args)));
    Started s;
    const auto line = c.out().line(5000ms);
    INFO("stderr: " << c.stderr_text());
    REQUIRE(line.has_value());
    s.line = *line;
    c.signal(SIGTERM);
    s.code = c.wait(3000ms);
    s.rest_of_stdout = c.out().until_eof(1000ms);
    return s;
}

}  // namespace

TEST_CASE("every server: -h/--help prints usage on stdout and exits 0") {
    for (const auto& server : every_server()) {
        for (const char* flag : {"-h", "--help"}) {
            INFO(server << " " << flag);
            Child c(with_binary(server, {flag}));
            const std::string out = c.out().until_eof();
            CHECK(c.wait() == 0);
            CHECK(out.rfind("usage: ", 0) == 0);
            for (const char* option :
                 {"-p, --port PORT", "-b, --bind ADDR", "-d, --daemon", "--pidfile PATH",
                  "--user NAME", "--log-file PATH", "--explain", "-h, --help"}) {
                CHECK_MESSAGE(out.find(option) != std::string::npos, option);
            }
            CHECK(c.stderr_text().empty());
        }
    }
}

TEST_CASE(
    "every server: bad usage (unknown option, port not a number or out of range): usage on "
    "stderr, exit 2") {
    for (const auto& server : every_server()) {
        for (const std::vector<std::string>& bad :
             std::vector<std::vector<std::string>>{{"--no-such-option"},
                                                   {"-z"},
                                                   {"--port", "seven"},
                                                   {"-p", "7001x"},
                                                   {"--port", "65536"},
                                                   {"--port", "-1"},
                                                   {"--port"},
                                                   {"unexpected-argument"}}) {
            INFO(server << " " << bad.front() << (bad.size() > 1 ? " " + bad[1] : ""));
            Child c(with_binary(server, bad));
            const std::string out = c.out().until_eof();
            CHECK(c.wait() == 2);
            CHECK(out.empty());
            CHECK(c.stderr_text().find("usage: ") != std::string::npos);
        }
    }
}

TEST_CASE(
    "every server: when ready it prints exactly one line on stdout, `listening on "
    "HOST:PORT` with the real port") {
    for (const auto& server : every_server()) {
        INFO(server);
        Child c(with_binary(server, {"--port", "0", "--bind", "127.0.0.1"}));
        const auto line = c.out().line(5000ms);  // stdout is a pipe: it must be flushed
        REQUIRE(line.has_value());
        REQUIRE(line->rfind("listening on 127.0.0.1:", 0) == 0);
        const int port = std::stoi(line->substr(line->rfind(':') + 1));
        CHECK(port > 0);
        CHECK(can_connect(port));
        CHECK(c.out().available(200ms).empty());  // nothing else on stdout
        c.signal(SIGTERM);
        CHECK(c.wait(3000ms) == 0);
        CHECK(c.out().until_eof(1000ms).empty());
    }
}

TEST_CASE("every server: IPv6 as `[::1]:PORT`") {
    for (const auto& server : every_server()) {
        INFO(server);
        const Started s = start_and_stop(server, {"--port", "0", "--bind", "::1"});
        CHECK(s.line.rfind("listening on [::1]:", 0) == 0);
        CHECK(s.line.find_first_not_of("0123456789", s.line.rfind(':') + 1) == std::string::npos);
        CHECK(s.code == 0);
        CHECK(s.rest_of_stdout.empty());
    }
}

TEST_CASE("details: for --bind localhost the `listening on` line shows the numeric address") {
    for (const auto& server : every_server()) {
        INFO(server);
        const Started s = start_and_stop(server, {"--port", "0", "--bind", "localhost"});
        const bool v4 = s.line.rfind("listening on 127.0.0.1:", 0) == 0;
        const bool v6 = s.line.rfind("listening on [::1]:", 0) == 0;
        CHECK((v4 || v6));
        CHECK(s.code == 0);
    }
}

TEST_CASE("every server: -p/--port and -b/--bind in short and long (--opt=value) forms") {
    for (const auto& server : every_server()) {
        INFO(server);
        const Started a = start_and_stop(server, {"-p", "0", "-b", "127.0.0.1"});
        CHECK(a.line.rfind("listening on 127.0.0.1:", 0) == 0);
        const Started b = start_and_stop(server, {"--port=0", "--bind=::1"});
        CHECK(b.line.rfind("listening on [::1]:", 0) == 0);
    }
}

TEST_CASE("every server: the default port is 7001, 7002, 7003 by stage") {
    // Only --bind 127.0.0.1 is given. Either the server gets the default port
    // (and says so) or someone else holds it (and bind names it): both show it.
    for (const auto& server : every_server()) {
        INFO(server);
        const std::string port = server.rfind("step1", 0) == 0   ? "7001"
                                 : server.rfind("step2", 0) == 0 ? "7002"
                                                                 : "7003";
        Child c(with_binary(server, {"--bind", "127.0.0.1"}));
        const auto line = c.out().line(3000ms);
        if (line) {
            CHECK(*line == "listening on 127.0.0.1:" + port);
            c.signal(SIGTERM);
            CHECK(c.wait(3000ms) == 0);
        } else {
            CHECK(c.wait(3000ms) == 1);
            CHECK(c.stderr_text() == "bind 127.0.0.1:" + port + ": Address already in use\n");
        }
    }
}

TEST_CASE(
    "every server: a failing call names itself and its argument: `bind 0.0.0.0:7001: "
    "Address already in use`, exit 1") {
    // The default address is 0.0.0.0; a listener of ours on 127.0.0.1:P makes
    // binding 0.0.0.0:P fail without anything ever listening on 0.0.0.0.
    const common::Fd taken = listen_on_loopback();
    const std::string port = std::to_string(port_of(taken));
    for (const auto& server : every_server()) {
        INFO(server);
        Child c(with_binary(server, {"--port", port}));
        CHECK(c.wait() == 1);
        CHECK(c.stderr_text() == "bind 0.0.0.0:" + port + ": Address already in use\n");
        CHECK(c.out().until_eof().empty());
    }
}

TEST_CASE(
    "every server: a failing call names itself and its argument (name lookup, log file, "
    "pid file)") {
    for (const auto& server : every_server()) {
        INFO(server);
        Child lookup(with_binary(server, {"--port", "0", "--bind", "no-such-host..invalid"}));
        CHECK(lookup.wait() == 1);
        CHECK(lookup.stderr_text().find("no-such-host..invalid") != std::string::npos);
        Child log(with_binary(
            server, {"--port", "0", "--bind", "127.0.0.1", "--log-file", "/nonexistent/x.log"}));
        CHECK(log.wait() == 1);
        CHECK(log.stderr_text().find("/nonexistent/x.log: No such file or directory") !=
              std::string::npos);
        Child pid(with_binary(
            server, {"--port", "0", "--bind", "127.0.0.1", "--pidfile", "/nonexistent/x.pid"}));
        CHECK(pid.wait() == 1);
        CHECK(pid.stderr_text().find("/nonexistent/x.pid: No such file or directory") !=
              std::string::npos);
    }
}

TEST_CASE("every server: SIGINT or SIGTERM: exit 0 and the pid file is removed") {
    for (const auto& server : every_server()) {
        for (int sig : {SIGINT, SIGTERM}) {
            INFO(server << " signal " << sig);
            TempPath pidfile("spec-pid");
            Server s = start_server(server, {"--pidfile", pidfile.str()});
            CHECK(read_file(pidfile.str()) == std::to_string(s.proc.pid()) + "\n");
            s.proc.signal(sig);
            CHECK(s.proc.wait(3000ms) == 0);
            CHECK(::access(pidfile.str().c_str(), F_OK) != 0);
            CHECK_FALSE(can_connect(s.port));
        }
    }
}

TEST_CASE("every server: logs go to stderr, never to stdout") {
    for (const auto& server : every_server()) {
        INFO(server);
        Server s = start_server(server);
        {
            Conn c(s.port);
            c.send("hello\n");
            if (server.rfind("step3", 0) == 0) {
                CHECK(c.until_eof().find("hello") == std::string::npos);  // plaintext: refused
            } else {
                CHECK(c.line().has_value());
            }
        }
        CHECK(eventually(
            [&] { return s.proc.stderr_text().find("127.0.0.1:") != std::string::npos; }));
        s.proc.signal(SIGTERM);
        CHECK(s.proc.wait(3000ms) == 0);
        CHECK(s.proc.out().until_eof(1000ms).empty());
    }
}

TEST_CASE("details: SIGHUP in stages 1 and 2: reopen --log-file") {
    for (const auto& server : every_server()) {
        if (server.rfind("step3", 0) == 0) continue;  // stage 3's SIGHUP reloads certificates
        INFO(server);
        TempPath log("spec-log");
        const std::string rotated = log.str() + ".1";
        Server s = start_server(server, {"--log-file", log.str()});
        auto talk = [&](const std::string& text) {
            Conn c(s.port);
            c.send(text + "\n");
            CHECK(c.line().has_value());
        };
        talk("before");
        REQUIRE(
            eventually([&] { return read_file(log.str()).find(" closed") != std::string::npos; }));
        REQUIRE(::rename(log.str().c_str(), rotated.c_str()) == 0);
        s.proc.signal(SIGHUP);
        REQUIRE(eventually([&] { return ::access(log.str().c_str(), F_OK) == 0; }));
        talk("after");
        CHECK(
            eventually([&] { return read_file(log.str()).find(" closed") != std::string::npos; }));
        CHECK(read_file(rotated).find("listening on") != std::string::npos);
        s.proc.signal(SIGTERM);
        CHECK(s.proc.wait(3000ms) == 0);
        CHECK(s.proc.stderr_text().empty());
        ::unlink(rotated.c_str());
    }
}

TEST_CASE(
    "every server: it restarts at once on its port while the last run's connection sits in "
    "TIME_WAIT (SO_REUSEADDR)") {
    for (const auto& server : every_server()) {
        INFO(server);
        const bool tls = server.rfind("step3", 0) == 0;
        // The server closes first (the active close), so TIME_WAIT is on its
        // side: on its port, where the next run binds.
        Server s = start_server(server, tls ? std::vector<std::string>{"--handshake-timeout", "1"}
                                            : std::vector<std::string>{});
        const std::string port = std::to_string(s.port);
        // TIME_WAIT needs the server's FIN first, then ours: each step waits for
        // the last (a loaded machine may take seconds), never assumes it came.
        {
            Conn c(s.port);
            if (tls) {
                CHECK(c.until_eof(30000ms).empty());  // dropped: a handshake never started
                REQUIRE(c.eof());
                s.proc.signal(SIGTERM);
            } else {
                if (server.find("step2_multiclient/server") == 0 &&
                    server != "step2_multiclient/server_fork") {
                    REQUIRE(c.line().has_value());  // the welcome: it accepted us
                } else {
                    c.send("x\n");
                    REQUIRE(c.line() == "x");
                }
                s.proc.signal(SIGTERM);
                c.until_eof(30000ms);  // its FIN (after "* server shutting down" in stage 2)
                REQUIRE(c.eof());
            }
            CHECK(c.read_error() == 0);
            CHECK(s.proc.wait(5000ms) == 0);
        }  // our FIN: the server's side goes to TIME_WAIT, for 60 s
        INFO("first run's stderr: " << s.proc.stderr_text());
        REQUIRE(eventually([&] {
            std::string out;
            shell("ss -tanH state time-wait '( sport = :" + port + " )'", &out);
            return !out.empty();
        }));
        Child again(with_binary(server, {"--bind", "127.0.0.1", "--port", port}));
        const auto line = again.out().line(5000ms);
        INFO("second run's stderr: " << again.stderr_text());
        CHECK(line == "listening on 127.0.0.1:" + port);
        again.signal(SIGTERM);
        CHECK(again.wait(3000ms) == 0);
    }
}
