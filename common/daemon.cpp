// daemon.cpp: --daemon, --pidfile and --user. Read it beside docs/daemon.md,
// which explains every step and shows what `ps` says before and after.
#include "daemon.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "error.hpp"

namespace common {
namespace {

// ---- --user -----------------------------------------------------------------

// The account --user names, looked up while we can still tell the user.
struct User {
    std::string name;
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups;  // its supplementary groups, as login would give them
};

User look_up_user(const std::string& name) {
    std::vector<char> buf(16 * 1024);
    passwd pw{};
    passwd* found = nullptr;
    int rc;
    while ((rc = ::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found)) == ERANGE) {
        buf.resize(buf.size() * 2);
    }
    if (rc != 0) {
        errno = rc;
        throw_errno("getpwnam", name);
    }
    if (found == nullptr) throw std::runtime_error("--user " + name + ": no such user");
    if (::geteuid() != 0) {
        throw std::runtime_error("--user " + name +
                                 ": only root can switch to another user (this process runs as "
                                 "uid " +
                                 std::to_string(::geteuid()) +
                                 "); start the server as root, or leave out --user");
    }
    User user{name, pw.pw_uid, pw.pw_gid, {}};
    int size = 16;
    while (true) {
        user.groups.resize(static_cast<std::size_t>(size));
        int count = size;
        if (::getgrouplist(name.c_str(), user.gid, user.groups.data(), &count) >= 0) {
            user.groups.resize(static_cast<std::size_t>(count));
            break;
        }
        size = count > size ? count : size * 2;  // count now says how many there are
    }
    return user;
}

// Groups first, then the group id, then the user id: once setuid() has run we
// may no longer change groups. docs/daemon.md#dropping-privileges
void drop_privileges(const User& user) {
    check(::setgroups(user.groups.size(), user.groups.data()), "setgroups", user.name);
    check(::setgid(user.gid), "setgid", std::to_string(user.gid));
    check(::setuid(user.uid), "setuid", std::to_string(user.uid));
    if (user.uid == 0) return;  // --user root: nothing was dropped
    // setuid() as root sets the real, effective and saved ids; if any of them
    // were still 0 we could go back. Prove that we cannot.
    if (::setuid(0) == 0 || ::seteuid(0) == 0) {
        throw std::runtime_error("--user " + user.name + ": root could be regained after setuid");
    }
    if (::getuid() != user.uid || ::geteuid() != user.uid || ::getgid() != user.gid ||
        ::getegid() != user.gid) {
        throw std::runtime_error("--user " + user.name + ": ids did not change as asked");
    }
}

// ---- --pidfile --------------------------------------------------------------

// The pid a pid file holds ("" when empty or not a number).
std::string read_pid(int fd) {
    char buf[32];
    const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return "";
    std::string text(buf, static_cast<std::size_t>(n));
    text.erase(text.find_last_not_of(" \n") + 1);
    long pid = 0;
    return parse_number(text, 1, INT_MAX, pid).empty() ? text : "";
}

// Open and lock the pid file. The lock, not the file's existence, says "a
// server is running": the kernel drops it when its holder dies, however it
// dies, so a file left by a crash is simply taken over.
// docs/daemon.md#the-pid-file
Fd lock_pidfile(const std::string& path) {
    for (int attempt = 0;; ++attempt) {
        // O_NOFOLLOW: root must not be tricked into writing through a symlink.
        Fd fd(check(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644), "open",
                    path));
        // flock belongs to the open file (not to the process): it survives
        // fork, and goes when the last descriptor for it is closed.
        if (::flock(fd.get(), LOCK_EX | LOCK_NB) < 0) {
            if (errno != EWOULDBLOCK) throw_errno("flock", path);
            // Its holder may be a moment away from writing its pid.
            std::string pid = read_pid(fd.get());
            for (int i = 0; i < 20 && pid.empty(); ++i) {
                ::usleep(10'000);
                pid = read_pid(fd.get());
            }
            throw std::runtime_error("pidfile " + path + ": already running (pid " +
                                     (pid.empty() ? "unknown" : pid) + ")");
        }
        // The server that held it may have removed the file between our open()
        // and flock(): then we hold a lock on a file nobody can find. Make sure
        // the path still names the file we locked, else start again.
        struct stat locked {};
        struct stat named {};
        check(::fstat(fd.get(), &locked), "fstat", path);
        if (::stat(path.c_str(), &named) == 0 && named.st_dev == locked.st_dev &&
            named.st_ino == locked.st_ino) {
            return fd;
        }
        if (attempt == 10) throw std::runtime_error("pidfile " + path + ": keeps disappearing");
    }
}

void write_pid(int fd, const std::string& path, Logger& log) {
    const std::string self = std::to_string(::getpid());
    if (const std::string old = read_pid(fd); !old.empty() && old != self) {
        log.info("pid file ", path, " was left by pid ", old, " (not running); taking it over");
    }
    const std::string text = self + "\n";
    check(::ftruncate(fd, 0), "ftruncate", path);
    if (::pwrite(fd, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
        throw_errno("write", path);
    }
    // A pid is no secret: anyone may read it (kill still checks permissions).
    check(::fchmod(fd, 0644), "fchmod", path);
}

// The pid file, then the privilege drop: both in the process that will serve.
Service claim(const ServerOptions& opts, Logger& log, const std::optional<User>& user) {
    Fd pidfile;
    if (!opts.pidfile.empty()) {
        pidfile = lock_pidfile(opts.pidfile);
        write_pid(pidfile.get(), opts.pidfile, log);
        // Given to the user we become, so it can still truncate it at exit.
        if (user) check(::fchown(pidfile.get(), user->uid, user->gid), "fchown", opts.pidfile);
    }
    Service service = pidfile ? Service(opts.pidfile, std::move(pidfile)) : Service();
    if (user) {
        drop_privileges(*user);
        log.info("running as ", user->name, " (uid ", user->uid, ", gid ", user->gid, ")");
    }
    return service;
}

// ---- --daemon ---------------------------------------------------------------

// The daemon's messages to the process that started it, over a pipe:
// "R" = ready, "E" + text = failed. EOF with nothing = it died first.
constexpr char kReady = 'R';
constexpr char kFailed = 'E';

void report(int fd, char kind, std::string_view text) {
    std::string message(1, kind);
    message += text;
    std::size_t done = 0;
    while (done < message.size()) {
        const ssize_t n = ::write(fd, message.data() + done, message.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;  // the starter is gone: nobody left to tell
        done += static_cast<std::size_t>(n);
    }
}

// In the starting process: wait until the daemon is ready or has failed, say
// so, and exit. docs/daemon.md#8-tell-the-starter-we-are-ready
[[noreturn]] void wait_for_daemon(Fd from_daemon, pid_t middle, std::string_view listening_on) {
    std::string message;
    char buf[512];
    while (true) {
        const ssize_t n = ::read(from_daemon.get(), buf, sizeof buf);
        if (n > 0) {
            message.append(buf, static_cast<std::size_t>(n));
        } else if (n < 0 && errno == EINTR) {
            continue;  // Ctrl-C here stops nothing: the daemon is not ours to stop
        } else {
            break;  // EOF: every write end is closed
        }
    }
    int status = 0;
    while (::waitpid(middle, &status, 0) < 0 && errno == EINTR) {
    }
    if (!message.empty() && message.front() == kReady) {
        std::printf("listening on %.*s\n", static_cast<int>(listening_on.size()),
                    listening_on.data());
        std::fflush(stdout);
        ::_exit(0);
    }
    const std::string why =
        message.empty() ? "the daemon exited before it was ready" : message.substr(1);
    std::fprintf(stderr, "%s\n", why.c_str());
    ::_exit(1);
}

// fork, setsid, fork. Returns only in the daemon (the grandchild), with the
// write end of the readiness pipe. docs/daemon.md#2-fork-let-the-shell-go
Fd detach(std::string_view listening_on) {
    int fds[2];
    check(::pipe2(fds, O_CLOEXEC), "pipe2");
    Fd from_daemon(fds[0]);
    Fd to_starter(fds[1]);
    std::fflush(nullptr);  // or buffered output would be written by two processes

    const pid_t middle = check(::fork(), "fork");
    if (middle > 0) {
        to_starter.reset();  // or we would never see EOF
        wait_for_daemon(std::move(from_daemon), middle, listening_on);
    }
    from_daemon.reset();

    // A new session with no controlling terminal; we lead it and its only
    // process group. docs/daemon.md#3-setsid-a-session-without-a-terminal
    if (::setsid() < 0) {
        report(to_starter.get(), kFailed, "setsid: " + std::generic_category().message(errno));
        ::_exit(1);
    }
    // A session leader that opens a terminal acquires it as its controlling
    // terminal; its child never can. docs/daemon.md#4-fork-again-never-a-terminal-again
    const pid_t daemon = ::fork();
    if (daemon < 0) {
        report(to_starter.get(), kFailed, "fork: " + std::generic_category().message(errno));
        ::_exit(1);
    }
    if (daemon > 0) ::_exit(0);  // _exit: no destructors, no atexit, no stdio flush
    return to_starter;
}

// Close every descriptor above 2 that this process did not open itself: the
// ones without close-on-exec (see daemon.hpp). /proc/self/fd lists the open
// ones; close_range closes the gaps between those we keep.
// docs/daemon.md#6-close-what-we-inherited
void close_inherited_descriptors() {
    std::vector<unsigned> keep;
    {
        std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir("/proc/self/fd"), ::closedir);
        if (!dir) throw_errno("opendir", "/proc/self/fd");
        const int own = ::dirfd(dir.get());
        while (const dirent* entry = ::readdir(dir.get())) {
            long fd = 0;
            if (!parse_number(entry->d_name, 3, INT_MAX, fd).empty()) continue;  // ".", 0-2
            if (fd == own) continue;
            const int flags = ::fcntl(static_cast<int>(fd), F_GETFD);
            if (flags >= 0 && (flags & FD_CLOEXEC) != 0) keep.push_back(static_cast<unsigned>(fd));
        }
    }
    std::sort(keep.begin(), keep.end());
    unsigned first = 3;
    for (const unsigned fd : keep) {
        if (fd > first) {
            check(::close_range(first, fd - 1, 0), "close_range",
                  std::to_string(first) + "-" + std::to_string(fd - 1));
        }
        first = fd + 1;
    }
    check(::close_range(first, ~0U, 0), "close_range", std::to_string(first) + "-");
}

// stdin, stdout and stderr on /dev/null: a stray printf or read must neither
// fail nor reach a terminal we no longer own. docs/daemon.md#7-stdio-on-devnull
void stdio_to_dev_null() {
    Fd null(check(::open("/dev/null", O_RDWR), "open", "/dev/null"));
    for (int fd = 0; fd <= 2; ++fd)
        check(::dup2(null.get(), fd), "dup2", "/dev/null");
    if (null.get() <= 2) null.release();  // it was one of 0-2 already: keep it
}

// syslog's name for us: "step1_echo/server", from the binary's path.
std::string syslog_ident() {
    char buf[PATH_MAX];
    const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return program_invocation_short_name;
    const std::string path(buf, static_cast<std::size_t>(n));
    const auto base = path.rfind('/');
    const auto dir =
        base == 0 || base == std::string::npos ? std::string::npos : path.rfind('/', base - 1);
    return dir == std::string::npos ? path.substr(base + 1) : path.substr(dir + 1);
}

// Without --daemon: the pid file, --user, then the `listening on` line.
Service serve_here(const ServerOptions& opts, Logger& log, const std::optional<User>& user,
                   std::string_view listening_on) {
    Service service = claim(opts, log, user);
    std::printf("listening on %.*s\n", static_cast<int>(listening_on.size()), listening_on.data());
    std::fflush(stdout);
    log.info("listening on ", listening_on);
    return service;
}

}  // namespace

Service::Service(std::string pidfile, Fd locked)
    : pidfile_(std::move(pidfile)), pidfile_fd_(std::move(locked)), owner_(::getpid()) {}

Service::Service(Service&& other) noexcept
    : pidfile_(std::exchange(other.pidfile_, {})),
      pidfile_fd_(std::move(other.pidfile_fd_)),
      owner_(std::exchange(other.owner_, 0)) {}

Service::~Service() {
    if (!pidfile_fd_ || owner_ != ::getpid()) return;  // a forked child: not ours to remove
    // Remove it while we still hold the lock. After --user the directory may
    // not let us; then at least leave no live-looking pid behind.
    if (::unlink(pidfile_.c_str()) < 0) {
        [[maybe_unused]] int ignored = ::ftruncate(pidfile_fd_.get(), 0);
    }
}  // pidfile_fd_ closes here: the lock goes with it

void check_user_option(const ServerOptions& opts) {
    if (!opts.user.empty()) look_up_user(opts.user);
}

Service start_service(const ServerOptions& opts, Logger& log, std::string_view listening_on) {
    // Everything that can fail for a reason the user must fix is checked
    // while we still have their terminal.
    std::optional<User> user;
    if (!opts.user.empty()) user = look_up_user(opts.user);
    if (!opts.daemon) return serve_here(opts, log, user, listening_on);
    // The daemon will chdir("/"): a relative --pidfile must mean the
    // directory the user started us in.
    ServerOptions daemon_opts = opts;
    if (!opts.pidfile.empty()) daemon_opts.pidfile = std::filesystem::absolute(opts.pidfile);

    // docs/daemon.md#the-steps
    Fd to_starter = detach(listening_on);
    // From here on we are the daemon; any error goes back through the pipe.
    try {
        if (opts.log_file.empty()) log.use_syslog(syslog_ident());
        // Step 5: hold no directory busy (so it can be unmounted), and create
        // files without group write or any access for others.
        // docs/daemon.md#5-chdir-and-umask
        check(::chdir("/"), "chdir", "/");
        ::umask(027);
        Service service = claim(daemon_opts, log, user);  // pid file, then --user
        close_inherited_descriptors();
        stdio_to_dev_null();
        log.info("daemon started, pid ", ::getpid(), ", listening on ", listening_on);
        report(to_starter.get(), kReady, "");
        return service;  // to_starter closes: the starter sees EOF after "R"
    } catch (const std::exception& e) {
        // The Service (if any) was destroyed on the way here: pid file removed.
        log.info(e.what());
        report(to_starter.get(), kFailed, e.what());
        ::_exit(1);
    }
}

}  // namespace common
