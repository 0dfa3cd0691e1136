#include "harness.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

#include "../../common/error.hpp"
#include "../../common/net.hpp"
#include "doctest.h"

#ifndef REPO_ROOT
#error "REPO_ROOT must be defined by the build"
#endif

namespace test {

using Clock = std::chrono::steady_clock;

namespace {

int ms_until(Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<Duration>(deadline - Clock::now()).count();
    return left < 0 ? 0 : static_cast<int>(left);
}

}  // namespace

// `make grade` runs these same tests against someone else's programs:
// GRADE_STAGE=step1_echo with GRADE_SERVER=PATH stands PATH in for
// step1_echo/server (GRADE_CLIENT, GRADE_SERVER_FORK ... likewise: GRADE_
// and the program's name in capitals). Everything else is the repository's.
std::string repo_path(std::string_view relative) {
    const char* stage = std::getenv("GRADE_STAGE");
    const auto slash = relative.rfind('/');
    if (stage && slash != std::string_view::npos && relative.substr(0, slash) == stage) {
        std::string name = "GRADE_";
        for (char c : relative.substr(slash + 1))
            name += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        if (const char* substitute = std::getenv(name.c_str()); substitute && *substitute)
            return substitute;
    }
    return std::string(REPO_ROOT) + "/" + std::string(relative);
}

TempPath::TempPath(std::string_view stem) {
    std::string templ = "/tmp/socktest-" + std::string(stem) + "-XXXXXX";
    int fd = ::mkstemp(templ.data());
    if (fd < 0) throw std::runtime_error("mkstemp failed");
    ::close(fd);
    path_ = templ;
}

TempPath::~TempPath() {
    ::unlink(path_.c_str());
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void write_file(const std::string& path, std::string_view content) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
}

// ---- Reader ----------------------------------------------------------------

bool Reader::fill(Clock::time_point deadline) {
    if (eof_ || fd_ < 0) return false;
    pollfd p{fd_, POLLIN, 0};
    int rc = ::poll(&p, 1, ms_until(deadline));
    if (rc <= 0) return false;
    char chunk[65536];
    ssize_t n = ::read(fd_, chunk, sizeof chunk);
    if (n <= 0) {
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
        if (n < 0) error_ = errno;
        eof_ = true;  // EOF, or an error such as a reset: nothing more will come
        return false;
    }
    buf_.erase(0, std::exchange(taken_, 0));  // once per read, not per line
    buf_.append(chunk, static_cast<std::size_t>(n));
    return true;
}

std::optional<std::string> Reader::line(Duration timeout) {
    const auto deadline = Clock::now() + timeout;
    while (true) {
        const auto nl = buf_.find('\n', taken_);
        if (nl != std::string::npos) {
            std::string out = buf_.substr(taken_, nl - taken_);
            taken_ = nl + 1;
            return out;
        }
        if (!fill(deadline)) {
            if (eof_ || Clock::now() >= deadline) return std::nullopt;
        }
    }
}

std::string Reader::exact(std::size_t n, Duration timeout) {
    const auto deadline = Clock::now() + timeout;
    while (buf_.size() - taken_ < n) {
        if (!fill(deadline) && (eof_ || Clock::now() >= deadline)) break;
    }
    std::string out = buf_.substr(taken_, n);
    taken_ += out.size();
    return out;
}

std::string Reader::until_eof(Duration timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!eof_) {
        if (!fill(deadline) && (eof_ || Clock::now() >= deadline)) break;
    }
    return take_rest();
}

std::string Reader::available(Duration timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!eof_ && Clock::now() < deadline)
        fill(deadline);
    return take_rest();
}

std::string Reader::take_rest() {
    buf_.erase(0, std::exchange(taken_, 0));
    return std::exchange(buf_, {});
}

// ---- Child -----------------------------------------------------------------

Child::Child(std::vector<std::string> argv, SpawnOptions opts) {
    TempPath err("stderr");
    stderr_path_ = err.str() + ".log";
    int in_pipe[2] = {-1, -1};
    int out_pipe[2] = {-1, -1};
    if (opts.pipe_stdin) common::check(::pipe2(in_pipe, O_CLOEXEC), "pipe2");
    if (opts.stdout_file.empty()) common::check(::pipe2(out_pipe, O_CLOEXEC), "pipe2");

    const pid_t parent = ::getpid();
    pid_ = common::check(::fork(), "fork");
    if (pid_ == 0) {
        // In the child: die with the test process, whatever happens to it.
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) ::_exit(127);
        ::setpgid(0, 0);  // its own process group: kill() reaches its children too
        int in = opts.pipe_stdin            ? in_pipe[0]
                 : !opts.stdin_file.empty() ? ::open(opts.stdin_file.c_str(), O_RDONLY)
                                            : ::open("/dev/null", O_RDONLY);
        int out = opts.stdout_file.empty()
                      ? out_pipe[1]
                      : ::open(opts.stdout_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int errfd = ::open(stderr_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in < 0 || out < 0 || errfd < 0) ::_exit(127);
        ::dup2(in, 0);
        ::dup2(out, 1);
        ::dup2(errfd, 2);
        for (int fd : {in, out, errfd}) {
            if (fd > 2) ::close(fd);  // only 0, 1 and 2 stay open in the child
        }
        // Default signal dispositions and an empty mask, whatever the test runner had.
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        ::signal(SIGPIPE, SIG_DFL);
        for (const auto& e : opts.env)
            ::putenv(const_cast<char*>(e.c_str()));
        std::vector<char*> args;
        for (auto& a : argv)
            args.push_back(a.data());
        args.push_back(nullptr);
        ::execvp(args[0], args.data());
        ::_exit(127);
    }
    if (opts.pipe_stdin) {
        ::close(in_pipe[0]);
        in_.reset(in_pipe[1]);
    }
    if (opts.stdout_file.empty()) {
        ::close(out_pipe[1]);
        out_.reset(out_pipe[0]);
        out_reader_.attach(out_.get());
    }
}

Child::Child(Child&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      status_(other.status_),
      in_(std::move(other.in_)),
      out_(std::move(other.out_)),
      out_reader_(std::move(other.out_reader_)),
      stderr_path_(std::exchange(other.stderr_path_, {})) {}

Child::~Child() {
    if (pid_ > 0 && !status_) {
        ::kill(-pid_, SIGKILL);  // the process group: the child and anything it forked
        ::kill(pid_, SIGKILL);
        int st;
        ::waitpid(pid_, &st, 0);
    }
    if (!stderr_path_.empty()) ::unlink(stderr_path_.c_str());
}

std::string Child::stderr_text() const {
    return read_file(stderr_path_);
}

void Child::signal(int sig) {
    if (pid_ > 0 && !status_) ::kill(pid_, sig);
}

std::optional<int> Child::wait(Duration timeout) {
    if (status_) return status_;
    const auto deadline = Clock::now() + timeout;
    while (true) {
        int st = 0;
        pid_t r = ::waitpid(pid_, &st, WNOHANG);
        if (r == pid_) {
            status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            return status_;
        }
        if (Clock::now() >= deadline) return std::nullopt;
        ::usleep(5000);
    }
}

bool Child::running() {
    return !wait(0ms).has_value();
}

Server start_server(std::string_view binary, std::vector<std::string> args) {
    bool has_port = false, has_bind = false;
    for (const auto& a : args) {
        if (a == "--port" || a == "-p") has_port = true;
        if (a == "--bind" || a == "-b") has_bind = true;
    }
    std::vector<std::string> argv = {repo_path(binary)};
    if (!has_port) argv.insert(argv.end(), {"--port", "0"});
    if (!has_bind) argv.insert(argv.end(), {"--bind", "127.0.0.1"});
    argv.insert(argv.end(), args.begin(), args.end());
    Server s{Child(argv), "", 0};
    auto line = s.proc.out().line(5000ms);
    INFO("server stderr: " << s.proc.stderr_text());
    if (!line) {
        const auto status = s.proc.wait(100ms);
        REQUIRE_MESSAGE(line.has_value(),
                        "a `listening on HOST:PORT` line on stdout within 5 s from "
                            << argv[0] << " (it "
                            << (status ? "exited with status " + std::to_string(*status)
                                       : std::string("is still running"))
                            << ")");
    }
    const std::string prefix = "listening on ";
    REQUIRE(line->rfind(prefix, 0) == 0);
    auto colon = line->rfind(':');
    s.host = line->substr(prefix.size(), colon - prefix.size());
    if (!s.host.empty() && s.host.front() == '[') s.host = s.host.substr(1, s.host.size() - 2);
    s.port = std::stoi(line->substr(colon + 1));
    return s;
}

// ---- Conn ------------------------------------------------------------------

namespace {

common::Fd dial(int port, std::string_view host) {
    auto addrs = common::resolve(host, std::to_string(port), false);
    for (const auto& a : addrs) {
        common::Fd fd(::socket(a.family, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (fd && ::connect(fd.get(), a.sa(), a.length) == 0) return fd;
    }
    return common::Fd();
}

}  // namespace

Conn::Conn(int port, std::string_view host) : fd_(dial(port, host)), reader_(fd_.get()) {
    if (!fd_) throw std::runtime_error("test could not connect to port " + std::to_string(port));
}

Conn::Conn(common::Fd fd) : fd_(std::move(fd)), reader_(fd_.get()) {}

void Conn::send(std::string_view data) {
    common::send_all(fd_.get(), data);
}

void Conn::shutdown_write() {
    ::shutdown(fd_.get(), SHUT_WR);
}

void Conn::reset() {
    linger l{1, 0};
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
    fd_.reset();
}

Listener::Listener(int backlog) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (!fd_ || ::bind(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(fd_.get(), backlog) != 0 ||
        ::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        throw std::runtime_error("Listener: bind/listen failed");
    }
    port_ = ntohs(a.sin_port);
}

common::Fd Listener::accept(Duration timeout) {
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return common::Fd();
    return common::Fd(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
}

std::string round_trip(Conn& c, const std::string& data, Duration timeout, Duration read_after) {
    std::thread writer([&] {
        c.send(data);
        c.shutdown_write();
    });
    std::this_thread::sleep_for(read_after);
    std::string back = c.until_eof(timeout);
    writer.join();
    return back;
}

bool can_connect(int port, std::string_view host) {
    return static_cast<bool>(dial(port, host));
}

int free_port() {
    common::Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0) {
        throw std::runtime_error("free_port: bind failed");
    }
    return ntohs(a.sin_port);
}

bool is_listening(int port) {
    return shell("ss -ltnH 'sport = :" + std::to_string(port) + "' | grep -q LISTEN") == 0;
}

int open_fd_count(pid_t pid) {
    std::string dir = "/proc/" + std::to_string(pid) + "/fd";
    DIR* d = ::opendir(dir.c_str());
    if (!d) return -1;
    int count = 0;
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] != '.') ++count;
    }
    ::closedir(d);
    return count;
}

int settled_fd_count(pid_t pid) {
    int now = open_fd_count(pid);
    for (int i = 0; i < 25; ++i) {
        ::usleep(200'000);
        const int later = open_fd_count(pid);
        if (later == now) break;
        now = later;
    }
    return now;
}

double cpu_seconds(pid_t pid) {
    std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
    // Fields after the command name (which may contain spaces) start after ')'.
    std::istringstream in(stat.substr(stat.rfind(')') + 2));
    std::string field;
    unsigned long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && in >> field; ++i) {
        if (i == 14) utime = std::stoul(field);
        if (i == 15) stime = std::stoul(field);
    }
    return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

std::string random_bytes(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::string out(n, '\0');
    for (auto& c : out)
        c = static_cast<char>(rng() & 0xff);
    return out;
}

int shell(const std::string& command, std::string* out, Duration timeout) {
    TempPath capture("shell");
    Child c({"bash", "-c", command}, SpawnOptions{false, "", capture.str(), {}});
    auto rc = c.wait(timeout);
    if (out) *out = read_file(capture.str());
    return rc.value_or(-1);
}

}  // namespace test
