// Unit tests for common/: addresses, options, errors, send_all, Fd.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "../../common/error.hpp"
#include "../../common/fd.hpp"
#include "../../common/net.hpp"
#include "../../common/options.hpp"
#include "doctest.h"
#include "harness.hpp"

TEST_CASE("format_address prints IPv4 as host:port and IPv6 in brackets") {
    sockaddr_in v4{};
    v4.sin_family = AF_INET;
    v4.sin_port = htons(7001);
    ::inet_pton(AF_INET, "127.0.0.1", &v4.sin_addr);
    CHECK(common::format_address(reinterpret_cast<sockaddr*>(&v4), sizeof v4) == "127.0.0.1:7001");

    sockaddr_in6 v6{};
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons(7001);
    ::inet_pton(AF_INET6, "::1", &v6.sin6_addr);
    CHECK(common::format_address(reinterpret_cast<sockaddr*>(&v6), sizeof v6) == "[::1]:7001");

    CHECK(common::join_host_port("localhost", "7001") == "localhost:7001");
    CHECK(common::join_host_port("::1", "80") == "[::1]:80");
}

TEST_CASE("resolve gives numeric addresses back and names the host on failure") {
    auto v4 = common::resolve("127.0.0.1", "7001", false);
    REQUIRE(!v4.empty());
    CHECK(common::format_address(v4.front()) == "127.0.0.1:7001");
    auto v6 = common::resolve("::1", "0", true);
    REQUIRE(!v6.empty());
    CHECK(v6.front().family == AF_INET6);
    CHECK_THROWS_WITH_AS(common::resolve("no-such-host..invalid", "7001", false),
                         doctest::Contains("getaddrinfo no-such-host..invalid:7001: "),
                         std::runtime_error);
}

TEST_CASE("check and throw_errno name the call and its argument") {
    errno = EADDRINUSE;
    try {
        common::throw_errno("bind", "0.0.0.0:7001");
        FAIL("no exception");
    } catch (const std::system_error& e) {
        CHECK(std::string(e.what()) == "bind 0.0.0.0:7001: Address already in use");
        CHECK(e.code().value() == EADDRINUSE);
    }
    CHECK(common::check(5, "read") == 5);
    CHECK_THROWS_AS(common::check(::close(-1), "close", "-1"), std::system_error);
}

TEST_CASE("port numbers: 0 to 65535 only") {
    CHECK(common::check_port("0").empty());
    CHECK(common::check_port("65535").empty());
    CHECK(common::check_port("65536") == "invalid port: '65536' is out of range (0-65535)");
    CHECK(common::check_port("abc") == "invalid port: 'abc' is not a number");
    CHECK(common::check_port("-1") != "");
    CHECK(common::check_port("80x") != "");
    CHECK(common::check_port("") != "");
}

namespace {
// Run the option parser in a child (it exits on bad usage); give back its
// exit code and stderr.
int parse_in_child(std::vector<std::string> args, std::string* err_out) {
    test::TempPath err("opt");
    pid_t pid = ::fork();
    if (pid == 0) {
        int fd = ::open(err.str().c_str(), O_WRONLY | O_TRUNC);
        ::dup2(fd, 2);
        int devnull = ::open("/dev/null", O_WRONLY);
        ::dup2(devnull, 1);
        std::vector<char*> argv;
        for (auto& a : args)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        common::ExtraOption extras[] = {
            {"max-clients", "N", "most clients at once", [](std::string_view v) -> std::string {
                 long n;
                 return common::parse_number(v, 1, 1000, n);
             }}};
        common::parse_server_options(static_cast<int>(args.size()), argv.data(), "7001", extras);
        ::_exit(0);
    }
    int st = 0;
    ::waitpid(pid, &st, 0);
    *err_out = test::read_file(err.str());
    return WEXITSTATUS(st);
}
}  // namespace

TEST_CASE("server options: good ones parse, bad ones print usage and exit 2") {
    std::string err;
    CHECK(parse_in_child({"server", "--port", "0", "-b", "::1", "--explain"}, &err) == 0);
    CHECK(parse_in_child({"server", "--max-clients", "10"}, &err) == 0);

    CHECK(parse_in_child({"server", "--port", "http"}, &err) == 2);
    CHECK(err.find("invalid port: 'http' is not a number") != std::string::npos);
    CHECK(err.find("usage: server") != std::string::npos);

    CHECK(parse_in_child({"server", "--frobnicate"}, &err) == 2);
    CHECK(err.find("frobnicate") != std::string::npos);

    CHECK(parse_in_child({"server", "--max-clients", "0"}, &err) == 2);
    CHECK(err.find("--max-clients: '0' is out of range") != std::string::npos);

    CHECK(parse_in_child({"server", "stray"}, &err) == 2);
    CHECK(parse_in_child({"server", "--port"}, &err) == 2);
}

TEST_CASE("server options: values land in the struct") {
    std::vector<std::string> args = {"server", "-p",         "7100",   "--bind",
                                     "::1",    "--log-file", "/x",     "--pidfile",
                                     "/p",     "--user",     "nobody", "-d"};
    std::vector<char*> argv;
    for (auto& a : args)
        argv.push_back(a.data());
    auto o = common::parse_server_options(static_cast<int>(args.size()), argv.data(), "7001");
    CHECK(o.port == "7100");
    CHECK(o.bind == "::1");
    CHECK(o.log_file == "/x");
    CHECK(o.pidfile == "/p");
    CHECK(o.user == "nobody");
    CHECK(o.daemon);
    CHECK_FALSE(o.explain);
}

TEST_CASE("client options: HOST and PORT are positional, options anywhere") {
    std::vector<std::string> args = {"client", "::1", "--explain", "7005"};
    std::vector<char*> argv;
    for (auto& a : args)
        argv.push_back(a.data());
    auto o = common::parse_client_options(static_cast<int>(args.size()), argv.data(), "7001");
    CHECK(o.host == "::1");
    CHECK(o.port == "7005");
    CHECK(o.explain);
}

TEST_CASE("Fd closes its descriptor once, and moves") {
    int raw = ::open("/dev/null", O_RDONLY);
    REQUIRE(raw >= 0);
    {
        common::Fd a(raw);
        common::Fd b(std::move(a));
        CHECK_FALSE(a);
        CHECK(b.get() == raw);
    }
    CHECK(::fcntl(raw, F_GETFD) == -1);  // closed by b's destructor
    CHECK(errno == EBADF);
}

TEST_CASE("send_all moves 1 MiB intact through a tiny send buffer to a slow reader") {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    common::Fd writer(sv[0]), reader(sv[1]);
    int small = 4096;
    ::setsockopt(writer.get(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    ::setsockopt(reader.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);

    const std::string data = test::random_bytes(1 << 20, 7);
    std::string received;
    std::thread slow([&] {
        char buf[1000];  // small reads with pauses: send() must write in pieces
        int reads = 0;
        while (true) {
            ssize_t n = ::read(reader.get(), buf, sizeof buf);
            if (n <= 0) break;
            received.append(buf, static_cast<std::size_t>(n));
            if (++reads % 64 == 0) ::usleep(1000);
        }
    });
    common::send_all(writer.get(), data);
    ::shutdown(writer.get(), SHUT_WR);
    slow.join();
    CHECK(received.size() == data.size());
    CHECK(received == data);
}

TEST_CASE("send_all reports a closed peer as EPIPE instead of dying of SIGPIPE") {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    common::Fd writer(sv[0]);
    ::close(sv[1]);
    // main() ignores SIGPIPE for the test process; MSG_NOSIGNAL must also work
    // without that, so restore the default for this check.
    ::signal(SIGPIPE, SIG_DFL);
    try {
        common::send_all(writer.get(), std::string(100, 'x'));
        FAIL("no exception");
    } catch (const std::system_error& e) {
        CHECK(e.code().value() == EPIPE);
        CHECK(std::string(e.what()).rfind("send: ", 0) == 0);
    }
    ::signal(SIGPIPE, SIG_IGN);
}
