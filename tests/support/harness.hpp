// tests/support/harness.hpp: start the real binaries, talk to them, clean up.
//
// Every wait here has a deadline, every process started is killed and reaped
// by PID when its Child goes out of scope, and servers are started with
// --port 0 --bind 127.0.0.1 and found through their `listening on` line.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "../../common/fd.hpp"
#include "doctest.h"

namespace test {

using namespace std::chrono_literals;
using Duration = std::chrono::milliseconds;

// Absolute path of a file in the repository ("step1_echo/server"), or the
// program `make grade` stands in for it (GRADE_STAGE, GRADE_SERVER ...).
std::string repo_path(std::string_view relative);

// A temporary file path, removed when the object dies.
class TempPath {
  public:
    explicit TempPath(std::string_view stem = "t");
    ~TempPath();
    TempPath(const TempPath&) = delete;
    TempPath& operator=(const TempPath&) = delete;
    const std::string& str() const { return path_; }

  private:
    std::string path_;
};

std::string read_file(const std::string& path);
void write_file(const std::string& path, std::string_view content);

// Buffered reads from one descriptor with deadlines.
class Reader {
  public:
    explicit Reader(int fd = -1) : fd_(fd) {}
    void attach(int fd) { fd_ = fd; }
    // One line without its '\n'; nullopt on EOF or when the deadline passes.
    std::optional<std::string> line(Duration timeout = 5000ms);
    // Exactly n bytes, or fewer if EOF/deadline came first.
    std::string exact(std::size_t n, Duration timeout = 5000ms);
    // Everything until EOF (or the deadline).
    std::string until_eof(Duration timeout = 5000ms);
    // Whatever arrives within `timeout` (for "nothing more comes" checks).
    std::string available(Duration timeout);
    bool eof() const { return eof_; }
    // How the stream ended: 0 for EOF (the peer's FIN), else the errno of the
    // failed read (ECONNRESET: the peer sent RST). 0 while not ended.
    int error() const { return error_; }

  private:
    bool fill(std::chrono::steady_clock::time_point deadline);  // false: EOF or deadline
    std::string take_rest();                                    // everything read and not yet taken
    int fd_;
    // Read but not yet taken: buf_ from offset taken_ on. Taking a line moves
    // the offset, not the bytes (erasing each line from the front moved the
    // whole buffer per line, which made a test's reader a slow reader).
    std::string buf_;
    std::size_t taken_ = 0;
    bool eof_ = false;
    int error_ = 0;
};

struct SpawnOptions {
    bool pipe_stdin = false;       // else /dev/null, or stdin_file
    std::string stdin_file;        // read stdin from this file
    std::string stdout_file;       // else a pipe read by out()
    std::vector<std::string> env;  // extra "NAME=value" entries
};

// A child process. Its stderr goes to a temporary file (never a pipe that
// could fill up and block it): read it with stderr_text().
class Child {
  public:
    Child(std::vector<std::string> argv, SpawnOptions opts = {});
    ~Child();  // SIGKILL and reap if still running
    Child(Child&&) noexcept;
    Child& operator=(Child&&) = delete;
    Child(const Child&) = delete;

    pid_t pid() const { return pid_; }
    int stdin_fd() const { return in_.get(); }
    void close_stdin() { in_.reset(); }
    Reader& out() { return out_reader_; }
    std::string stderr_text() const;

    void signal(int sig);
    // Exit code (or 128+signal); nullopt if still running at the deadline.
    std::optional<int> wait(Duration timeout = 5000ms);
    bool running();

  private:
    pid_t pid_ = -1;
    std::optional<int> status_;
    common::Fd in_, out_;
    Reader out_reader_;
    std::string stderr_path_;
};

// A server binary started on a free loopback port.
struct Server {
    Child proc;
    std::string host;  // as printed: "127.0.0.1"
    int port = 0;
};
// Adds "--port 0 --bind 127.0.0.1" unless args already set them. Fails the
// test (REQUIRE) if no `listening on` line comes within 5 s.
Server start_server(std::string_view binary, std::vector<std::string> args = {});

// A TCP connection from the test itself.
class Conn {
  public:
    Conn(int port, std::string_view host = "127.0.0.1");
    explicit Conn(common::Fd fd);
    int fd() const { return fd_.get(); }
    void send(std::string_view data);  // all of it (blocking)
    std::optional<std::string> line(Duration timeout = 5000ms) { return reader_.line(timeout); }
    std::string exact(std::size_t n, Duration t = 5000ms) { return reader_.exact(n, t); }
    std::string until_eof(Duration t = 5000ms) { return reader_.until_eof(t); }
    std::string available(Duration t) { return reader_.available(t); }
    // After until_eof(): 0 if the connection ended with FIN, ECONNRESET if with RST.
    int read_error() const { return reader_.error(); }
    bool eof() const { return reader_.eof(); }  // the peer's FIN (or a reset) was read
    void shutdown_write();
    void reset();  // SO_LINGER 0 then close: the peer gets RST
    void close() { fd_.reset(); }

  private:
    common::Fd fd_;
    Reader reader_;
};

// A listening socket of the test's own on 127.0.0.1, on a free port: the peer
// a client under test connects to (a server that misbehaves on purpose).
class Listener {
  public:
    explicit Listener(int backlog = 16);
    int port() const { return port_; }
    int fd() const { return fd_.get(); }
    // The next connection, or an empty Fd if none comes within `timeout`.
    common::Fd accept(Duration timeout = 5000ms);

  private:
    common::Fd fd_;
    int port_ = 0;
};
// An echo round trip: `data` is sent from a second thread, then the write
// side is shut down, while this one reads everything back until EOF. With
// `read_after`, reading starts that late (a slow reader: the server's send()
// meets full buffers). Returns what came back.
std::string round_trip(Conn& c, const std::string& data, Duration timeout = 20000ms,
                       Duration read_after = 0ms);

// Try to connect; false when refused.
bool can_connect(int port, std::string_view host = "127.0.0.1");

// A port that was free a moment ago (bind 127.0.0.1:0, read it, close), for
// tools that cannot pick one themselves.
int free_port();
// Is something listening on 127.0.0.1:port? (ss, without connecting to it)
bool is_listening(int port);

// Number of open descriptors of a process (/proc/PID/fd).
int open_fd_count(pid_t pid);
// The same once it stops changing (two looks 200 ms apart, at most 5 s): a
// baseline taken right after start-up can include a descriptor the process
// (or a sanitizer's runtime) holds only for a moment.
int settled_fd_count(pid_t pid);

// CPU time (user + system) a process has used so far, from /proc/PID/stat.
double cpu_seconds(pid_t pid);

// Poll `predicate` every 10 ms until it is true or the timeout passes.
template <typename Predicate>
bool eventually(Predicate predicate, Duration timeout = 5000ms) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
        if (predicate()) return true;
        if (std::chrono::steady_clock::now() >= deadline) return false;
        struct timespec ts = {0, 10'000'000};
        nanosleep(&ts, nullptr);
    }
}

// n random bytes (with NULs and every other byte value).
std::string random_bytes(std::size_t n, unsigned seed = 1);

// Run a shell command line (bash -c) with a deadline; returns exit code,
// and its stdout in *out when given.
int shell(const std::string& command, std::string* out = nullptr, Duration timeout = 20000ms);

}  // namespace test

// A line a check expected shows in a failure as what came: the text (cut at
// 200 bytes, control bytes escaped) or that nothing came (EOF or deadline).
template <>
struct doctest::StringMaker<std::optional<std::string>> {
    static doctest::String convert(const std::optional<std::string>& value) {
        if (!value) return "nothing (EOF or deadline)";
        std::string out = "\"";
        for (std::size_t i = 0; i < value->size() && i < 200; ++i) {
            const unsigned char c = static_cast<unsigned char>((*value)[i]);
            if (c >= 0x20 && c != 0x7f) {
                out += static_cast<char>(c);
            } else {
                static const char hex[] = "0123456789abcdef";
                out += {'\\', 'x', hex[c >> 4], hex[c & 15]};
            }
        }
        out += value->size() > 200 ? "\"..." : "\"";
        return out.c_str();
    }
};

// Child::wait()'s result in a failure: the exit status, or that it is still running.
template <>
struct doctest::StringMaker<std::optional<int>> {
    static doctest::String convert(const std::optional<int>& status) {
        if (!status) return "still running at the deadline";
        return ("exit status " + std::to_string(*status)).c_str();
    }
};
