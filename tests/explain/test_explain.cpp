// --explain: the narration a learner reads beside the code.
//
// The stage 1 binaries narrate their calls in the order they make them, the
// TCP_INFO snapshots show the kernel's real view of the connection, a long
// session stays short, and without --explain nothing is printed at all.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "../../common/explain.hpp"
#include "doctest.h"
#include "harness.hpp"

using namespace test;

namespace {

const char* const kServer = "step1_echo/server";
const char* const kClient = "step1_echo/client";

// The "explain: " lines of a process's stderr, prefix removed.
std::vector<std::string> explain_lines(const std::string& stderr_text) {
    std::vector<std::string> out;
    std::istringstream in(stderr_text);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("explain: ", 0) == 0) out.push_back(line.substr(9));
    }
    return out;
}

// Index of the first line at or after `from` that starts with `prefix`
// (after an optional "[pid N] " tag), or -1.
int find_from(const std::vector<std::string>& lines, std::string_view prefix, int from) {
    for (int i = from < 0 ? 0 : from; i < static_cast<int>(lines.size()); ++i) {
        if (std::string_view(lines[i]).substr(0, prefix.size()) == prefix) return i;
    }
    return -1;
}

// Each prefix occurs, in this order. Returns the first one missing or out of
// order ("" when all are in order).
std::string first_out_of_order(const std::vector<std::string>& lines,
                               const std::vector<std::string>& prefixes) {
    int at = 0;
    for (const auto& p : prefixes) {
        const int i = find_from(lines, p, at);
        if (i < 0) return p;
        at = i + 1;
    }
    return "";
}

std::string joined(const std::vector<std::string>& lines) {
    std::string out;
    for (const auto& l : lines)
        out += l + "\n";
    return out;
}

// The MSS a TCP_INFO line reports, or -1.
long mss_of(const std::string& line) {
    static const std::regex mss(R"(MSS (\d+) bytes)");
    std::smatch m;
    return std::regex_search(line, m, mss) ? std::stol(m[1]) : -1;
}

// Everything written to stderr (fd 2) while the object lives.
class StderrCapture {
  public:
    StderrCapture() : saved_(::dup(STDERR_FILENO)) {
        int fd = ::open(path_.str().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        REQUIRE(fd >= 0);
        ::dup2(fd, STDERR_FILENO);
        ::close(fd);
    }
    ~StderrCapture() { restore(); }
    std::string text() {
        restore();
        return read_file(path_.str());
    }

  private:
    void restore() {
        if (saved_ >= 0) {
            ::dup2(saved_, STDERR_FILENO);
            ::close(saved_);
            saved_ = -1;
        }
    }
    TempPath path_{"stderr"};
    int saved_;
};

// Run the stage 1 client with `input` on stdin against `port`; its stderr.
std::string run_client(int port, const std::string& input, bool explain,
                       std::string* output = nullptr) {
    TempPath in("in"), out("out");
    write_file(in.str(), input);
    std::vector<std::string> argv = {repo_path(kClient), "127.0.0.1", std::to_string(port)};
    if (explain) argv.insert(argv.begin() + 1, "--explain");
    SpawnOptions opts;
    opts.stdin_file = in.str();
    opts.stdout_file = out.str();
    Child client(argv, opts);
    REQUIRE(client.wait(20000ms) == 0);
    if (output) *output = read_file(out.str());
    return client.stderr_text();
}

}  // namespace

TEST_CASE("explain: the stage 1 server narrates socket, bind, listen, accept ... close in order") {
    Server s = start_server(kServer, {"--explain"});
    {
        Conn c(s.port);
        c.send("hello\n");
        CHECK(c.line() == "hello");
        c.shutdown_write();
        CHECK(c.until_eof().empty());
    }
    REQUIRE(eventually([&] { return s.proc.stderr_text().find("close(fd") != std::string::npos; }));
    s.proc.signal(SIGTERM);
    CHECK(s.proc.wait() == 0);

    const auto lines = explain_lines(s.proc.stderr_text());
    const std::string context = joined(lines);  // INFO keeps a reference
    INFO(context);
    CHECK(first_out_of_order(
              lines, {"socket(AF_INET, SOCK_STREAM)", "setsockopt(", "bind(", "listen(",
                      "poll() woke up", "accept(", "TCP_INFO after accept", "recv(", "send(",
                      "recv(", "TCP_INFO before close", "close("}) == "");
    // The client's FIN shows up as recv() returning 0, before our close().
    const int fin = find_from(lines, "recv(", find_from(lines, "send(", 0));
    REQUIRE(fin >= 0);
    CHECK(lines[fin].find("-> 0: the peer sent FIN") != std::string::npos);
    // The client closed first: we are the one left in CLOSE_WAIT.
    CHECK(lines[fin].find("the socket is in CLOSE_WAIT until we close") != std::string::npos);

    // The accept snapshot: the kernel's view of a connection that just finished its handshake.
    const int snap = find_from(lines, "TCP_INFO after accept", 0);
    REQUIRE(snap >= 0);
    CHECK(lines[snap].find("state ESTABLISHED") != std::string::npos);
    CHECK(mss_of(lines[snap]) > 0);
    CHECK(lines[snap].find("RTT ") != std::string::npos);
    CHECK(lines[snap].find("[docs/tcp-on-the-wire.md#tcp_info]") != std::string::npos);
    // Before close the kernel has seen our 6 echoed bytes acknowledged.
    const int last = find_from(lines, "TCP_INFO before close", 0);
    REQUIRE(last >= 0);
    CHECK(lines[last].find("bytes acked 6,") != std::string::npos);
}

TEST_CASE("explain: the stage 1 client narrates socket, connect ... shutdown, close in order") {
    Server s = start_server(kServer);
    std::string echoed;
    const auto lines = explain_lines(run_client(s.port, "hi there\n", true, &echoed));
    CHECK(echoed == "hi there\n");              // narration goes to stderr, never into the data
    const std::string context = joined(lines);  // INFO keeps a reference
    INFO(context);
    CHECK(first_out_of_order(lines,
                             {"socket(", "connect(", "TCP_INFO after connect", "send(", "shutdown(",
                              "recv(", "recv(", "TCP_INFO before close", "close("}) == "");
    const int snap = find_from(lines, "TCP_INFO after connect", 0);
    REQUIRE(snap >= 0);
    CHECK(lines[snap].find("state ESTABLISHED") != std::string::npos);
    CHECK(mss_of(lines[snap]) > 0);
    // The server's FIN comes after its echo; close() is the last line.
    CHECK(lines.back().rfind("close(", 0) == 0);
    const int fin = find_from(lines, "recv(", find_from(lines, "recv(", 0) + 1);
    REQUIRE(fin >= 0);
    CHECK(lines[fin].find("-> 0: the peer sent FIN") != std::string::npos);
    // We half-closed first, so the FIN that ends the stream leaves us in TIME_WAIT, never
    // CLOSE_WAIT: the narration reads the state from TCP_INFO.
    CHECK(lines[fin].find("CLOSE_WAIT") == std::string::npos);
    CHECK(lines[fin].find("we had sent our FIN first") != std::string::npos);
    CHECK(lines[fin].find("TIME_WAIT") != std::string::npos);
}

TEST_CASE("explain: without --explain neither server nor client prints a narration line") {
    Server s = start_server(kServer);
    std::string echoed;
    const std::string client_err = run_client(s.port, "quiet\n", false, &echoed);
    CHECK(echoed == "quiet\n");
    REQUIRE(eventually(
        [&] { return s.proc.stderr_text().find(" closed, 6 bytes") != std::string::npos; }));
    s.proc.signal(SIGTERM);
    CHECK(s.proc.wait() == 0);
    CHECK(client_err.find("explain:") == std::string::npos);
    CHECK(s.proc.stderr_text().find("explain:") == std::string::npos);
}

TEST_CASE("explain: a long session explains the first send/recv in full, then one short line") {
    Server s = start_server(kServer, {"--explain"});
    const std::string data = random_bytes(2 << 20, 7);
    std::string echoed;
    const auto lines = explain_lines(run_client(s.port, data, true, &echoed));
    CHECK(echoed == data);
    const std::string context = joined(lines).substr(0, 4000);  // INFO keeps a reference
    INFO(context);
    int full_recv = 0, short_recv = 0, full_send = 0, short_send = 0;
    for (const auto& l : lines) {
        const bool linked = l.find(" [docs/") != std::string::npos;
        if (l.rfind("recv(", 0) == 0 && l.find("-> 0:") == std::string::npos) {
            (linked ? full_recv : short_recv)++;
            if (!linked) CHECK(l.size() < 40);  // "recv(fd 3) -> 65536 bytes"
        }
        if (l.rfind("send(", 0) == 0) (linked ? full_send : short_send)++;
    }
    CHECK(full_recv == 1);
    CHECK(full_send == 1);
    CHECK(short_recv > 0);  // 2 MiB never fits one recv()
    CHECK(short_send > 0);
}

TEST_CASE("explain: off means silent, even for calls on descriptors that do not exist") {
    StderrCapture capture;
    common::Explain off(false);
    CHECK_FALSE(off.enabled());
    off.socket(99, AF_INET);
    off.listen(99, 16);
    off.accepted(99, 100, "127.0.0.1:1");
    off.connected(100, "127.0.0.1:1");
    off.sent(100, 5);
    off.received(100, 0);
    off.woke("select", 1);
    off.forked(0);
    off.tls_state("SSLv3/TLS write client hello");
    off.tls_established(100, "TLSv1.3", "TLS_AES_256_GCM_SHA384");
    off.closing(100);
    off.note("nothing", "docs/01-echo.md#close");
    CHECK(capture.text().empty());
}

TEST_CASE("explain: TLS hooks name the handshake messages from OpenSSL's state strings") {
    StderrCapture capture;
    common::Explain on(true);
    on.tls_state("SSLv3/TLS write client hello");
    on.tls_state("SSLv3/TLS read server hello");
    on.tls_state("TLSv1.3 read encrypted extensions");
    on.tls_state("SSLv3/TLS read server certificate");
    on.tls_state("TLSv1.3 read server certificate verify");
    on.tls_state("SSLv3/TLS read finished");
    on.tls_state("SSLv3/TLS write finished");
    on.tls_established(7, "TLSv1.3", "TLS_AES_256_GCM_SHA384");
    on.tls_state("SSLv3/TLS write client hello");  // a second connection: short line
    on.tls_alert(true, "close notify");
    const auto lines = explain_lines(capture.text());
    const std::string context = joined(lines);  // INFO keeps a reference
    INFO(context);
    CHECK(first_out_of_order(lines,
                             {"TLS: sent ClientHello:", "TLS: received ServerHello:",
                              "TLS: received EncryptedExtensions:", "TLS: received Certificate:",
                              "TLS: received CertificateVerify:", "TLS: received Finished:",
                              "TLS: sent Finished", "TLS handshake finished on fd 7",
                              "TLS: sent ClientHello", "TLS: sent close_notify:"}) == "");
    REQUIRE(lines.size() == 10);
    CHECK(lines[7].find("TLSv1.3, cipher TLS_AES_256_GCM_SHA384") != std::string::npos);
    CHECK(lines[6] == "TLS: sent Finished");  // explained once, at the first Finished
    CHECK(lines[8] == "TLS: sent ClientHello");
    CHECK(lines[0].find("[docs/tcp-on-the-wire.md#tls]") != std::string::npos);
}

TEST_CASE("explain: poll() wake-ups say which descriptor is ready and why") {
    // A listening socket with one finished handshake in its queue.
    common::Fd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(listener);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listener.get(), 4) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    Conn peer(ntohs(addr.sin_port));

    pollfd fds[] = {{listener.get(), POLLIN, 0}};
    REQUIRE(::poll(fds, 1, 5000) == 1);
    StderrCapture capture;
    common::Explain on(true);
    on.polled(fds, 1);
    on.polled(fds, 1);
    on.forked(0);
    on.note("after fork", "");
    const auto lines = explain_lines(capture.text());
    const std::string context = joined(lines);  // INFO keeps a reference
    INFO(context);
    REQUIRE(lines.size() == 4);
    CHECK(lines[0].find("(listening socket) readable (a finished handshake waits in the accept "
                        "queue)") != std::string::npos);
    CHECK(lines[0].find("[docs/01-echo.md#poll]") != std::string::npos);
    CHECK(lines[1].find("[docs/") == std::string::npos);  // the second wake-up: short
    const std::string tag = "[pid " + std::to_string(::getpid()) + "] ";
    CHECK(lines[3] == tag + "after fork");
}

TEST_CASE("explain: every TCP_INFO label printed is explained in the glossary and the docs") {
    Server s = start_server(kServer, {"--explain"});
    {
        Conn c(s.port);
        c.send("x");
        CHECK(c.exact(1) == "x");
    }
    REQUIRE(eventually([&] { return s.proc.stderr_text().find("close(fd") != std::string::npos; }));
    const auto lines = explain_lines(s.proc.stderr_text());
    const int snap = find_from(lines, "TCP_INFO after accept", 0);
    REQUIRE(snap >= 0);
    // "TCP_INFO after accept fd 6: state ESTABLISHED, MSS 32768 bytes (advertised 65483), ..."
    std::string fields = lines[snap].substr(lines[snap].find(": ") + 2);
    fields = fields.substr(0, fields.find(" [docs/"));
    static const std::regex label(R"((?:^|, )([A-Za-z' -]+?) [0-9A-Z])");
    static const std::regex inner(R"(\(([a-z]+) [0-9])");  // "(advertised 65483)", "(variance"
    std::vector<std::string> labels;
    for (std::sregex_iterator it(fields.begin(), fields.end(), label), end; it != end; ++it) {
        labels.push_back((*it)[1]);
    }
    for (std::sregex_iterator it(fields.begin(), fields.end(), inner), end; it != end; ++it) {
        labels.push_back((*it)[1]);
    }
    const std::string context = fields;  // INFO keeps a reference
    INFO(context);
    CHECK(labels.size() >= 12);
    const std::string glossary = read_file(repo_path("docs/glossary.md"));
    const std::string wire = read_file(repo_path("docs/tcp-on-the-wire.md"));
    for (const auto& l : labels) {
        INFO("label: " << l);
        CHECK(glossary.find("| " + l + " |") != std::string::npos);
        CHECK(wire.find("| " + l + " |") != std::string::npos);
    }
}
