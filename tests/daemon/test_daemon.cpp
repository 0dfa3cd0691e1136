// Daemon tests: --daemon, --pidfile, --user, --log-file and SIGHUP, run
// against every server binary in the tree (docs/daemon.md).
//
// A daemon leaves the process group the harness kills, and is not our child:
// every test holds a DaemonGuard, which kills the daemon (by the pid in its
// pid file) when the test ends, whether it passed or not.
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "../../common/net.hpp"
#include "doctest.h"
#include "harness.hpp"

using namespace test;
namespace fs = std::filesystem;

namespace {

// How a test checks that a server serves.
enum class Probe {
    echo,     // "hi\n" comes back
    chat,     // a "* welcome" line arrives
    connect,  // the TCP handshake completes (TLS: nothing readable in plaintext)
};

struct Binary {
    const char* path;               // relative to the repository
    std::vector<std::string> args;  // options it needs besides the shared ones
    Probe probe;
    bool sighup_reopens_log;  // stages 1-2; stage 3's SIGHUP reloads certificates
    bool required;            // fail (not skip) when it is missing
    const char* needs_file;   // skip with a message when this file is missing
};

// Every server binary these tests run against. A stage that adds a server
// adds a line here.
const std::vector<Binary>& all_binaries() {
    static const std::vector<Binary> list = {
        {"step1_echo/server", {}, Probe::echo, true, true, nullptr},
        {"step2_multiclient/server", {}, Probe::chat, true, false, nullptr},
        {"step2_multiclient/server_fork", {}, Probe::echo, true, false, nullptr},
        {"step3_tls/server", {}, Probe::connect, false, false, "step3_tls/certs/server.key"},
    };
    return list;
}

// The binaries that exist in this checkout.
std::vector<Binary> binaries() {
    std::vector<Binary> out;
    for (const auto& b : all_binaries()) {
        const bool exists = ::access(repo_path(b.path).c_str(), X_OK) == 0;
        if (b.required) REQUIRE_MESSAGE(exists, repo_path(b.path) << " is missing; build it first");
        if (!exists) continue;
        if (b.needs_file && !fs::exists(repo_path(b.needs_file))) {
            MESSAGE("skipping " << b.path << ": " << b.needs_file << " is missing");
            continue;
        }
        out.push_back(b);
    }
    return out;
}

void probe(const Binary& b, int port) {
    INFO("probing " << b.path << " on port " << port);
    switch (b.probe) {
        case Probe::echo: {
            Conn c(port);
            c.send("hi\n");
            CHECK(c.line() == "hi");
            break;
        }
        case Probe::chat: {
            Conn c(port);
            const auto welcome = c.line();
            REQUIRE(welcome.has_value());
            CHECK(welcome->rfind("* welcome ", 0) == 0);
            break;
        }
        case Probe::connect:
            CHECK(can_connect(port));
            break;
    }
}

// What /proc/PID/stat says about a process (fields 3-7 of proc(5)).
struct ProcStat {
    char state = '?';
    pid_t ppid = 0, pgrp = 0, session = 0;
    int tty_nr = 0;
};

std::optional<ProcStat> proc_stat(pid_t pid) {
    const std::string text = read_file("/proc/" + std::to_string(pid) + "/stat");
    const auto paren = text.rfind(')');  // the command name may hold spaces and ')'
    if (text.empty() || paren == std::string::npos) return std::nullopt;
    ProcStat s;
    std::istringstream in(text.substr(paren + 2));
    in >> s.state >> s.ppid >> s.pgrp >> s.session >> s.tty_nr;
    if (!in) return std::nullopt;
    return s;
}

// Running (a zombie waiting for init to reap it counts as gone).
bool alive(pid_t pid) {
    const auto s = proc_stat(pid);
    return s && s->state != 'Z' && s->state != 'X';
}

// One line of /proc/PID/status, e.g. status_line(pid, "Umask") == "0027".
std::string status_line(pid_t pid, const std::string& key) {
    std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/status"));
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(key + ":", 0) == 0) {
            auto value = line.substr(key.size() + 1);
            return value.substr(value.find_first_not_of(" \t"));
        }
    }
    return "";
}

std::string link_target(const std::string& path) {
    std::error_code ec;
    const auto target = fs::read_symlink(path, ec);
    return ec ? "" : target.string();
}

pid_t pid_in(const std::string& pidfile) {
    std::string text = read_file(pidfile);
    if (text.empty() || text.back() != '\n') return -1;
    try {
        return static_cast<pid_t>(std::stol(text));
    } catch (const std::exception&) {
        return -1;
    }
}

// A private directory for one test's pid and log files.
class TempDir {
  public:
    TempDir() {
        std::string templ = "/tmp/socktest-daemon-XXXXXX";
        REQUIRE(::mkdtemp(templ.data()) != nullptr);
        path_ = templ;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    std::string operator/(const char* name) const { return path_ + "/" + name; }
    const std::string& str() const { return path_; }

  private:
    std::string path_;
};

// Every running process of `binary` whose command line names `pidfile`, or
// whose environment has SOCKTEST_PIDFILE=`pidfile` (each test's pid file path
// is unique: mkdtemp).
std::vector<pid_t> processes_using(const std::string& binary, const std::string& pidfile) {
    std::vector<pid_t> out;
    for (const auto& e : fs::directory_iterator("/proc")) {
        const std::string name = e.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        const pid_t p = static_cast<pid_t>(std::stol(name));
        if (link_target(e.path().string() + "/exe") != binary) continue;
        const std::string cmdline = read_file(e.path().string() + "/cmdline");
        const std::string environ = read_file(e.path().string() + "/environ");
        if ((cmdline.find(pidfile) != std::string::npos ||
             environ.find("SOCKTEST_PIDFILE=" + pidfile) != std::string::npos) &&
            alive(p)) {
            out.push_back(p);
        }
    }
    return out;
}

// Kills the daemon named by a pid file when the test ends, however it ends:
// the pid the file named, and any other process of the binary started with
// that pid file (a second daemon a broken lock let through, server_fork's
// children).
class DaemonGuard {
  public:
    DaemonGuard(std::string pidfile, const Binary& b)
        : pidfile_(std::move(pidfile)), binary_(repo_path(b.path)) {}
    ~DaemonGuard() { kill_now(); }
    DaemonGuard(const DaemonGuard&) = delete;
    DaemonGuard& operator=(const DaemonGuard&) = delete;

    // The daemon's pid, read once from the pid file (it may be removed later).
    pid_t pid() {
        if (pid_ <= 0) pid_ = pid_in(pidfile_);
        return pid_;
    }

    void kill_now() {
        std::vector<pid_t> victims = processes_using(binary_, pidfile_);
        // The pid from the file, if it is still our binary (never a process
        // that reused the pid).
        const pid_t p = pid();
        if (p > 0 && alive(p) && link_target("/proc/" + std::to_string(p) + "/exe") == binary_) {
            victims.push_back(p);
        }
        for (const pid_t v : victims)
            ::kill(v, SIGKILL);
        for (const pid_t v : victims)
            eventually([&] { return !alive(v); }, 2000ms);
    }

  private:
    std::string pidfile_;
    std::string binary_;
    pid_t pid_ = -1;
};

// What the starting process did: exit code, stdout, stderr.
struct Started {
    int code = -1;
    std::string out;
    std::string err;
    int port = 0;  // from the `listening on` line, 0 if none
};

// Run a server with `args` (plus --bind 127.0.0.1 and the binary's own
// options) and wait at most 5 s for the process we started to exit.
Started run(const Binary& b, const std::vector<std::string>& args,
            std::vector<std::string> prefix = {}, SpawnOptions spawn = {}) {
    std::vector<std::string> argv = std::move(prefix);
    argv.push_back(repo_path(b.path));
    argv.insert(argv.end(), b.args.begin(), b.args.end());
    argv.insert(argv.end(), {"--bind", "127.0.0.1"});
    argv.insert(argv.end(), args.begin(), args.end());
    Child starter(argv, std::move(spawn));
    Started s;
    const auto code = starter.wait(5000ms);
    s.err = starter.stderr_text();
    INFO(b.path << " stderr: " << s.err);
    REQUIRE_MESSAGE(code.has_value(), "the starting process did not exit within 5 s");
    s.code = *code;
    s.out = starter.out().available(200ms);
    const std::string prefix_text = "listening on 127.0.0.1:";
    if (s.out.rfind(prefix_text, 0) == 0) s.port = std::stoi(s.out.substr(prefix_text.size()));
    return s;
}

// Start `b` as a daemon on a free port with a pid file; the daemon must be ready.
Started start_daemon(const Binary& b, const std::string& pidfile,
                     std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"-d", "--pidfile", pidfile, "--port", "0"};
    args.insert(args.end(), extra.begin(), extra.end());
    Started s = run(b, args);
    INFO(b.path << " stderr: " << s.err);
    REQUIRE(s.code == 0);
    REQUIRE_MESSAGE(s.port > 0, "no `listening on` line: " << s.out);
    return s;
}

// A pseudo-terminal, so that the process we start has a controlling terminal
// that a daemon which forgot setsid() would keep.
class Pty {
  public:
    Pty() : master_(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC)) {
        REQUIRE(master_);
        REQUIRE(::grantpt(master_.get()) == 0);
        REQUIRE(::unlockpt(master_.get()) == 0);
        slave_ = ::ptsname(master_.get());
    }
    const std::string& slave() const { return slave_; }

  private:
    common::Fd master_;
    std::string slave_;
};

// Start `b` as a daemon from a session that has the pty as its controlling
// terminal. The session leader (a shell) stays alive after the starter exits,
// so the terminal stays the session's: a daemon that forgot setsid() would
// still show it. Closing the pty (when `pty` dies) hangs the shell up.
Started start_from_terminal(const Binary& b, const Pty& pty, std::vector<std::string> args,
                            std::optional<Child>& session) {
    std::vector<std::string> argv = {"setsid",
                                     "-c",
                                     "bash",
                                     "-c",
                                     "\"$@\"; echo \"starter exit $?\"; exec cat >/dev/null",
                                     "bash",
                                     repo_path(b.path)};
    argv.insert(argv.end(), b.args.begin(), b.args.end());
    argv.insert(argv.end(), {"--bind", "127.0.0.1"});
    argv.insert(argv.end(), args.begin(), args.end());
    session.emplace(argv, SpawnOptions{false, pty.slave(), "", {}});
    Started s;
    std::optional<std::string> line;
    while ((line = session->out().line(5000ms)) && line->rfind("starter exit ", 0) != 0) {
        s.out += *line + "\n";
    }
    REQUIRE_MESSAGE(line.has_value(), "the starting process did not exit within 5 s");
    s.code = std::stoi(line->substr(13));
    const std::string prefix_text = "listening on 127.0.0.1:";
    if (s.out.rfind(prefix_text, 0) == 0) s.port = std::stoi(s.out.substr(prefix_text.size()));
    return s;
}

}  // namespace

TEST_CASE("daemon: the test's terminal wrapper really gives a controlling terminal") {
    // Without this, the "no controlling terminal" check below could not fail.
    Pty pty;
    TempPath out("stat");
    Child c({"setsid", "-w", "-c", "cat", "/proc/self/stat"},
            SpawnOptions{false, pty.slave(), out.str(), {}});
    REQUIRE(c.wait(5000ms) == 0);
    const std::string text = read_file(out.str());
    std::istringstream in(text.substr(text.rfind(')') + 2));
    char state;
    long ppid, pgrp, session, tty_nr = 0;
    in >> state >> ppid >> pgrp >> session >> tty_nr;
    CHECK(tty_nr != 0);
}

TEST_CASE("daemon: the starter exits 0 once the daemon serves; the daemon is detached") {
    for (const auto& b : binaries()) {
        INFO("server: " << b.path);
        TempDir dir;
        const std::string pidfile = dir / "server.pid";
        DaemonGuard guard(pidfile, b);
        Pty pty;
        std::optional<Child> session;
        const Started s =
            start_from_terminal(b, pty, {"-d", "--pidfile", pidfile, "--port", "0"}, session);
        INFO("stderr: " << session->stderr_text());
        REQUIRE(s.code == 0);
        REQUIRE(s.port > 0);

        // The pid file already names the daemon when the starter has exited.
        const pid_t pid = guard.pid();
        REQUIRE(pid > 0);
        REQUIRE(alive(pid));
        const auto st = proc_stat(pid);
        REQUIRE(st.has_value());
        CHECK(st->ppid != ::getpid());      // not our child: re-parented
        CHECK(st->tty_nr == 0);             // no controlling terminal
        CHECK(st->session != pid);          // not a session leader: can never get one
        CHECK(st->session != ::getsid(0));  // left the session it was started in
        CHECK(status_line(pid, "Umask") == "0027");
        CHECK(link_target("/proc/" + std::to_string(pid) + "/cwd") == "/");
        for (int fd = 0; fd <= 2; ++fd) {
            CHECK(link_target("/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd)) ==
                  "/dev/null");
        }
        CHECK(read_file(pidfile) == std::to_string(pid) + "\n");
        probe(b, s.port);  // at once: no sleep, no retry
    }
}

TEST_CASE("daemon: descriptors inherited from the starter are closed, its own are kept") {
    for (const auto& b : binaries()) {
        INFO("server: " << b.path);
        TempDir dir;
        const std::string pidfile = dir / "server.pid";
        const std::string leaked = dir / "leaked";
        write_file(leaked, "x");
        DaemonGuard guard(pidfile, b);
        // bash opens fds 7 and 9 without close-on-exec, as a careless parent would.
        const Started s = run(b, {"-d", "--pidfile", pidfile, "--port", "0"},
                              {"bash", "-c", "exec 7<\"$0\" 9<\"$0\"; exec \"$@\"", leaked});
        INFO("stderr: " << s.err);
        REQUIRE(s.code == 0);
        const pid_t pid = guard.pid();
        REQUIRE(pid > 0);
        int sockets = 0;
        for (const auto& e : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
            const std::string target = link_target(e.path().string());
            CHECK_MESSAGE(target != leaked, "fd " << e.path().filename() << " still open");
            if (target.rfind("socket:", 0) == 0) ++sockets;
        }
        CHECK(sockets >= 1);  // the listening socket survived
        probe(b, s.port);
    }
}

TEST_CASE("daemon: a second start on the same pid file fails while the first runs") {
    for (const auto& b : binaries()) {
        INFO("server: " << b.path);
        TempDir dir;
        const std::string pidfile = dir / "server.pid";
        DaemonGuard guard(pidfile, b);
        const Started first = start_daemon(b, pidfile);
        const pid_t pid = guard.pid();
        REQUIRE(pid > 0);

        const Started second = run(b, {"-d", "--pidfile", pidfile, "--port", "0"});
        CHECK(second.code == 1);
        CHECK(second.err.find("already running (pid " + std::to_string(pid) + ")") !=
              std::string::npos);
        CHECK(second.out.empty());  // no `listening on`: it is not serving
        CHECK(alive(pid));
        CHECK(pid_in(pidfile) == pid);  // the loser did not overwrite it
        // The loser's daemon reported its error and exited: only the first runs.
        CHECK(eventually([&] { return processes_using(repo_path(b.path), pidfile).size() == 1; }));
        probe(b, first.port);
    }
}

TEST_CASE("daemon: the lock, not the file, decides: a held lock refuses, a stale file is taken") {
    for (const auto& b : binaries()) {
        INFO("server: " << b.path);
        TempDir dir;
        const std::string pidfile = dir / "server.pid";
        {
            // Some other process holds the lock (here: the test itself).
            common::Fd held(::open(pidfile.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
            REQUIRE(held);
            REQUIRE(::flock(held.get(), LOCK_EX) == 0);
            write_file(pidfile, std::to_string(::getpid()) + "\n");
            DaemonGuard guard(pidfile, b);  // in case it wrongly starts
            const Started s = run(b, {"-d", "--pidfile", pidfile, "--port", "0"});
            CHECK(s.code == 1);
            CHECK(s.err.find("already running (pid " + std::to_string(::getpid()) + ")") !=
                  std::string::npos);
        }
        // A file left by a process that died: nobody holds its lock.
        Child gone({"true"});
        REQUIRE(gone.wait() == 0);
        const pid_t dead = gone.pid();
        write_file(pidfile, std::to_string(dead) + "\n");
        DaemonGuard guard(pidfile, b);
        const std::string log = dir / "server.log";
        const Started s = start_daemon(b, pidfile, {"--log-file", log});
        const pid_t pid = guard.pid();
        CHECK(pid > 0);
        CHECK(pid != dead);
        CHECK(alive(pid));
        CHECK(read_file(log).find("left by pid " + std::to_string(dead)) != std::string::npos);
        probe(b, s.port);
    }
}

TEST_CASE("daemon: SIGTERM stops it, even with a client connected, and removes the pid file") {
    for (const auto& b : binaries()) {
        INFO("server: " << b.path);
        TempDir dir;
        const std::string pidfile = dir / "server.pid";
        const std::string log = dir / "server.log";
        DaemonGuard guard(pidfile, b);
        const Started s = start_daemon(b, pidfile, {"--log-file", log});
        const pid_t pid = guard.pid();
        REQUIRE(pid > 0);
        probe(b, s.port);
        Conn idle(s.port);  // connected, says nothing

        REQUIRE(::kill(pid, SIGTERM) == 0);
        CHECK(eventually([&] { return !alive(pid); }, 3000ms));
        CHECK_FALSE(fs::exists(pidfile));
        INFO("log: " << read_file(log));
        CHECK_FALSE(can_connect(s.port));
    }
}

TEST_CASE("daemon: a bind failure is reported by the starter, exit 1, and nothing runs") {
    for (const auto& b : binaries()) {
        INFO("server: " << b.path);
        TempDir dir;
        const std::string pidfile = dir / "server.pid";
        // The port is taken by a listening socket of ours.
        common::Fd taken(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(taken.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        REQUIRE(::listen(taken.get(), 1) == 0);
        const std::string port = common::local_address(taken.get()).substr(10);  // "127.0.0.1:"

        DaemonGuard guard(pidfile, b);
        const Started s = run(b, {"-d", "--pidfile", pidfile, "--port", port});
        CHECK(s.code == 1);
        CHECK(s.err.find("bind 127.0.0.1:" + port + ": Address already in use") !=
              std::string::npos);
        CHECK(s.out.empty());
        CHECK_FALSE(fs::exists(pidfile));
    }
}

TEST_CASE("daemon: --log-file receives a line per event") {
    for (const auto& b : binaries()) {
        INFO("server: " << b.path);
        TempDir dir;
        const std::string pidfile = dir / "server.pid";
        const std::string log = dir / "server.log";
        DaemonGuard guard(pidfile, b);
        const Started s = start_daemon(b, pidfile, {"--log-file", log});
        CHECK(read_file(log).find("listening on 127.0.0.1:" + std::to_string(s.port)) !=
              std::string::npos);
        std::string peer;
        {
            Conn c(s.port);
            peer = common::local_address(c.fd());  // what the server calls us
        }
        INFO("log: " << read_file(log));
        CHECK(eventually([&] { return read_file(log).find(peer) != std::string::npos; }));
        if (b.probe == Probe::echo) {
            Conn c(s.port);
            const std::string me = common::local_address(c.fd());
            c.send("abc");
            CHECK(c.exact(3) == "abc");
            c.shutdown_write();
            CHECK(c.until_eof().empty());
            CHECK(eventually(
                [&] { return read_file(log).find(me + " closed, 3 bytes") != std::string::npos; }));
        }
    }
}

TEST_CASE("daemon: SIGHUP reopens --log-file after logrotate renamed it") {
    for (const auto& b : binaries()) {
        if (!b.sighup_reopens_log) continue;
        INFO("server: " << b.path);
        TempDir dir;
        const std::string pidfile = dir / "server.pid";
        const std::string log = dir / "server.log";
        const std::string rotated = dir / "server.log.1";
        DaemonGuard guard(pidfile, b);
        const Started s = start_daemon(b, pidfile, {"--log-file", log});
        const pid_t pid = guard.pid();
        REQUIRE(pid > 0);

        fs::rename(log, rotated);  // what logrotate does first
        REQUIRE(::kill(pid, SIGHUP) == 0);
        REQUIRE(eventually([&] { return fs::exists(log); }));
        std::string peer;
        {
            Conn c(s.port);
            peer = common::local_address(c.fd());
        }
        INFO("new log: " << read_file(log));
        CHECK(eventually([&] { return read_file(log).find(peer) != std::string::npos; }));
        CHECK(read_file(rotated).find(peer) == std::string::npos);
        CHECK(alive(pid));
    }
}

TEST_CASE("daemon: relative --pidfile and --log-file name the starter's directory") {
    for (const auto& b : binaries()) {
        INFO("server: " << b.path);
        TempDir dir;
        const std::string pidfile = dir / "server.pid";
        const std::string log = dir / "server.log";
        DaemonGuard guard(pidfile, b);
        // The daemon does chdir("/"); "server.pid" must still mean dir/server.pid.
        const Started s =
            run(b, {"-d", "--pidfile", "server.pid", "--log-file", "server.log", "--port", "0"},
                {"bash", "-c", "cd \"$0\" && exec \"$@\"", dir.str()},
                SpawnOptions{false, "", "", {"SOCKTEST_PIDFILE=" + pidfile}});  // for the guard
        INFO("stderr: " << s.err);
        REQUIRE(s.code == 0);
        const pid_t pid = guard.pid();
        REQUIRE(pid > 0);
        CHECK(link_target("/proc/" + std::to_string(pid) + "/cwd") == "/");
        if (b.sighup_reopens_log) {
            fs::rename(log, dir / "server.log.1");
            REQUIRE(::kill(pid, SIGHUP) == 0);
            CHECK(eventually([&] { return fs::exists(log); }));  // not /server.log
        }
        REQUIRE(::kill(pid, SIGTERM) == 0);
        CHECK(eventually([&] { return !alive(pid); }, 3000ms));
        CHECK_FALSE(fs::exists(pidfile));
    }
}

TEST_CASE("daemon: --pidfile in the foreground; SIGTERM exits 0 and removes it") {
    for (const auto& b : binaries()) {
        INFO("server: " << b.path);
        TempDir dir;
        const std::string pidfile = dir / "server.pid";
        std::vector<std::string> args = b.args;
        args.insert(args.end(), {"--pidfile", pidfile});
        Server s = start_server(b.path, args);
        CHECK(pid_in(pidfile) == s.proc.pid());
        probe(b, s.port);
        s.proc.signal(SIGTERM);
        CHECK(s.proc.wait(3000ms) == 0);
        CHECK_FALSE(fs::exists(pidfile));
    }
}

TEST_CASE("daemon: --user when started as root: binds below 1024, then runs as nobody") {
    if (::geteuid() != 0) {
        MESSAGE("skipped: --user needs root, and these tests run as uid " << ::geteuid());
        return;
    }
    const passwd* nobody = ::getpwnam("nobody");
    REQUIRE(nobody != nullptr);
    const uid_t uid = nobody->pw_uid;
    const gid_t gid = nobody->pw_gid;
    for (const auto& b : binaries()) {
        INFO("server: " << b.path);
        TempDir dir;
        // The daemon removes its pid file as nobody: the directory must let it.
        REQUIRE(::chown(dir.str().c_str(), uid, gid) == 0);
        const std::string pidfile = dir / "server.pid";
        // A privileged port that is free: the first one the daemon can bind
        // (another process, another test run, may take one at any moment).
        DaemonGuard guard(pidfile, b);
        int low = 1023;
        Started s;
        for (; low > 900; --low) {
            s = run(
                b, {"-d", "--pidfile", pidfile, "--user", "nobody", "--port", std::to_string(low)});
            if (s.code != 1 || s.err.find("Address already in use") == std::string::npos) break;
        }
        INFO(b.path << " stderr: " << s.err);
        REQUIRE(s.code == 0);
        CHECK(s.port == low);
        const pid_t pid = guard.pid();
        REQUIRE(pid > 0);
        const std::string u = std::to_string(uid), g = std::to_string(gid);
        CHECK(status_line(pid, "Uid") ==
              u + "\t" + u + "\t" + u + "\t" + u);  // real, eff, saved, fs
        CHECK(status_line(pid, "Gid") == g + "\t" + g + "\t" + g + "\t" + g);
        CHECK(status_line(pid, "Groups").find("0") != 0);  // not in root's group
        CHECK(status_line(pid, "CapEff") == "0000000000000000");
        struct stat st {};
        REQUIRE(::stat(pidfile.c_str(), &st) == 0);
        CHECK(st.st_uid == uid);  // given to the user before the drop
        probe(b, low);
        REQUIRE(::kill(pid, SIGTERM) == 0);
        CHECK(eventually([&] { return !alive(pid); }, 3000ms));
        CHECK_FALSE(fs::exists(pidfile));
    }
}

TEST_CASE("daemon: --user is refused when not root, and an unknown user is named") {
    for (const auto& b : binaries()) {
        INFO("server: " << b.path);
        TempDir dir;
        const std::string pidfile = dir / "server.pid";
        REQUIRE(::chmod(dir.str().c_str(), 0777) == 0);
        DaemonGuard guard(pidfile, b);

        const Started unknown =
            run(b, {"-d", "--pidfile", pidfile, "--port", "0", "--user", "no-such-user-4711"});
        CHECK(unknown.code == 1);
        CHECK(unknown.err.find("--user no-such-user-4711: no such user") != std::string::npos);

        // As root, become nobody first (setpriv), then ask for --user.
        std::vector<std::string> as_nobody;
        if (::geteuid() == 0) {
            as_nobody = {"setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"};
        }
        const Started refused =
            run(b, {"-d", "--pidfile", pidfile, "--port", "0", "--user", "root"}, as_nobody);
        CHECK(refused.code == 1);
        CHECK(refused.err.find("--user root: only root can switch to another user") !=
              std::string::npos);
        CHECK(refused.out.empty());
        CHECK_FALSE(fs::exists(pidfile));
    }
}
