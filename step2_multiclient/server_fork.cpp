// step2_multiclient/server_fork.cpp: the stage 1 echo server, one process per client.
//
// Read it beside docs/02-multiclient.md#fork. Stage 1 served one client at a
// time. Here the parent only accepts; for each connection it fork()s a child
// that echoes that one client, so many clients are served at once:
//
//     parent: socket -> bind -> listen -> loop { accept -> fork -> close(client) }
//     child:                                     close(listener) -> recv/send ... -> exit
//
// The lessons in this file:
//   - fork() copies the descriptor table, so after it BOTH processes hold the
//     listening socket and the client socket. Each closes the one it does not
//     use: otherwise the client's connection would stay open (no FIN) after
//     the child is done, because the parent still holds a reference to it.
//   - A finished child stays a zombie until its parent wait()s for it. A
//     SIGCHLD handler reaps every finished child.
//   - Clients cannot talk to each other: each child sees one socket only.
//     That is why the chat relay (server.cpp) is one process with select().

#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <exception>
#include <set>
#include <string>
#include <thread>

#include "../common/daemon.hpp"
#include "../common/error.hpp"
#include "../common/explain.hpp"
#include "../common/fd.hpp"
#include "../common/log.hpp"
#include "../common/net.hpp"
#include "../common/options.hpp"
#include "../common/signals.hpp"
#include "listener.hpp"

namespace {

using namespace std::chrono_literals;

// How many finished handshakes the kernel may queue for us. docs/01-echo.md#listen
constexpr int kBacklog = 128;
// On SIGTERM: how long children get to end before SIGKILL.
constexpr auto kChildGrace = 2s;

struct Context {
    common::Logger& log;
    common::Explain& explain;
    common::Signals& signals;
};

// The SIGCHLD handler: reap every child that has finished. One SIGCHLD may
// stand for several children (signals do not queue), hence the loop; WNOHANG
// returns 0 instead of waiting when the rest are still running. Only
// async-signal-safe calls here (waitpid is one), and errno is saved because
// the code we interrupted may be about to read it.  docs/02-multiclient.md#zombies-and-sigchld
extern "C" void on_sigchld(int) {
    const int saved_errno = errno;
    // [lesson:reap]
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    // [/lesson]
    errno = saved_errno;
}

void install_sigchld_handler() {
    struct sigaction sa {};
    sa.sa_handler = on_sigchld;
    sigemptyset(&sa.sa_mask);
    // SA_RESTART: a blocking call we are in is restarted after the handler.
    // SA_NOCLDSTOP: no SIGCHLD when a child is merely stopped.
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    common::check(::sigaction(SIGCHLD, &sa, nullptr), "sigaction SIGCHLD");
}

// Block SIGCHLD while alive, so the handler cannot reap a child between two
// of our own lines (see Children).
class SigchldBlocked {
  public:
    SigchldBlocked() {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGCHLD);
        ::sigprocmask(SIG_BLOCK, &set, &old_);
    }
    ~SigchldBlocked() { ::sigprocmask(SIG_SETMASK, &old_, nullptr); }
    SigchldBlocked(const SigchldBlocked&) = delete;
    SigchldBlocked& operator=(const SigchldBlocked&) = delete;

  private:
    sigset_t old_;
};

// The pids of our children, for SIGTERM. The handler reaps them behind our
// back, and a reaped pid may soon belong to an unrelated process: signalling
// it would hit a stranger. So pids are checked with SIGCHLD blocked: a pid
// that is still our child (running, or a zombie) cannot be reused, and no
// reaping can happen until we unblock.  docs/02-multiclient.md#ending-the-children
class Children {
  public:
    void add(pid_t pid) { pids_.insert(pid); }  // call with SIGCHLD blocked

    // Forget the children already reaped. Call with SIGCHLD blocked.
    void prune() {
        for (auto it = pids_.begin(); it != pids_.end();) {
            siginfo_t info{};
            // WNOWAIT: look without reaping. ECHILD: not our child any more.
            if (::waitid(P_PID, static_cast<id_t>(*it), &info, WEXITED | WNOHANG | WNOWAIT) != 0 &&
                errno == ECHILD) {
                it = pids_.erase(it);
            } else {
                ++it;
            }
        }
    }

    // SIGTERM every child, wait for them, SIGKILL the ones that linger.
    // Returns how many there were.
    std::size_t end_all() {
        SigchldBlocked blocked;  // from here on only we reap
        prune();
        const std::size_t count = pids_.size();
        for (pid_t pid : pids_)
            ::kill(pid, SIGTERM);
        const auto deadline = std::chrono::steady_clock::now() + kChildGrace;
        while (!pids_.empty() && std::chrono::steady_clock::now() < deadline) {
            reap_finished();
            if (!pids_.empty()) std::this_thread::sleep_for(10ms);
        }
        for (pid_t pid : pids_)
            ::kill(pid, SIGKILL);
        for (pid_t pid : pids_)
            ::waitpid(pid, nullptr, 0);
        pids_.clear();
        return count;
    }

  private:
    void reap_finished() {
        pid_t pid;
        while ((pid = ::waitpid(-1, nullptr, WNOHANG)) > 0)
            pids_.erase(pid);
        if (pid < 0 && errno == ECHILD) pids_.clear();
    }

    std::set<pid_t> pids_;
};

// Wait until the listener is readable or a signal arrives; false: stop.
bool wait_for_client(int listener, Context& ctx) {
    while (!ctx.signals.stop_requested()) {
        std::array<pollfd, 2> fds = {{{listener, POLLIN, 0}, {ctx.signals.fd(), POLLIN, 0}}};
        // docs/01-echo.md#poll
        if (::poll(fds.data(), fds.size(), -1) < 0) {
            if (errno == EINTR) continue;  // SIGCHLD, or a signal the pipe reports
            common::throw_errno("poll");
        }
        if (fds[1].revents != 0) {
            ctx.signals.drain();
            if (ctx.signals.stop_requested()) return false;
            if (ctx.signals.take_reload_request()) ctx.log.reopen();
        }
        if (fds[0].revents != 0) return true;
    }
    return false;
}

// Step 7 (in the child): echo one client until it half-closes. Blocking
// calls are fine here: this process serves nobody else.
void serve_child(int client, const std::string& peer, Context& ctx) {
    unsigned long long bytes = 0;
    std::string reason;
    std::array<char, 256 * 1024> buffer;  // as in stage 1: fewer calls for bulk data
    while (true) {
        // docs/01-echo.md#recv
        const ssize_t got = ::recv(client, buffer.data(), buffer.size(), 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            reason = std::generic_category().message(errno);  // e.g. a reset
            break;
        }
        ctx.explain.received(client, static_cast<std::size_t>(got));
        if (got == 0) break;  // the client's FIN
        try {
            // docs/01-echo.md#send
            common::send_all(client,
                             std::string_view(buffer.data(), static_cast<std::size_t>(got)));
        } catch (const std::system_error& e) {
            reason = e.code().message();  // EPIPE, ECONNRESET
            break;
        }
        ctx.explain.sent(client, static_cast<std::size_t>(got));
        bytes += static_cast<unsigned long long>(got);
    }
    ctx.log.info(peer, " closed, ", bytes, " bytes", reason.empty() ? "" : " (" + reason + ")");
}

int run(const common::ServerOptions& opts, common::Logger& log) {
    if (!opts.log_file.empty()) log.open_file(opts.log_file);
    common::Explain explain(opts.explain);
    common::Signals signals;  // SIGINT/SIGTERM stop us, SIGHUP reopens the log
    Context ctx{log, explain, signals};

    // Steps 1-4, exactly as in stage 1 (listener.cpp).  docs/01-echo.md#socket
    common::Fd listener = step2::open_listener(opts, explain, kBacklog, 0);
    common::Service service =
        common::start_service(opts, log, common::local_address(listener.get()));
    // After start_service: --daemon forks and waits for its own children
    // there, and our handler must not reap them first.
    install_sigchld_handler();
    Children children;

    bool accept_failing = false;
    while (wait_for_client(listener.get(), ctx)) {
        // Step 5: the next connection from the accept queue.
        sockaddr_storage peer_addr{};
        socklen_t peer_len = sizeof peer_addr;
        // docs/01-echo.md#accept
        common::Fd client(::accept4(listener.get(), reinterpret_cast<sockaddr*>(&peer_addr),
                                    &peer_len, SOCK_CLOEXEC));
        if (!client) {
            // A signal interrupted us (EINTR) or the client gave up before we
            // got to it (ECONNABORTED): just go on.
            const int err = errno;
            if (err == EINTR || err == ECONNABORTED || err == EAGAIN) continue;
            if (!accept_failing) log.info("accept: ", std::generic_category().message(err));
            accept_failing = true;  // log once per burst, not every 100 ms
            // Out of descriptors (EMFILE) or memory: the connection stays
            // queued and the listener stays readable, so retrying at once
            // would spin at 100% CPU. Pause; a signal still ends the pause.
            pollfd signal_only{signals.fd(), POLLIN, 0};
            ::poll(&signal_only, 1, 100);
            continue;
        }
        accept_failing = false;
        const std::string peer =
            common::format_address(reinterpret_cast<sockaddr*>(&peer_addr), peer_len);
        explain.accepted(listener.get(), client.get(), peer);

        // Step 6: a child process for this client. SIGCHLD is blocked until
        // its pid is in `children`, so the handler cannot reap it first.
        SigchldBlocked blocked;
        // [lesson:fork]
        const pid_t pid = ::fork();  // docs/02-multiclient.md#fork
        if (pid < 0) {
            log.info("fork: ", std::generic_category().message(errno), "; closing ", peer);
            continue;  // `client` closes
        }
        // [/lesson]
        if (pid == 0) {
            // The child. It has copies of both sockets: close the listener,
            // which only the parent accepts on. docs/02-multiclient.md#fork
            explain.forked(0);
            // [lesson:child-close]
            listener.reset();
            // [/lesson]
            common::Signals::restore_defaults();  // SIGTERM now simply ends us
            ::signal(SIGCHLD, SIG_DFL);
            sigset_t none;
            sigemptyset(&none);
            ::sigprocmask(SIG_SETMASK, &none, nullptr);
            serve_child(client.get(), peer, ctx);
            // Step 8 (child): close and exit. _exit: no destructors of the
            // parent's objects run here (they would remove the parent's pid
            // file, for one).  docs/01-echo.md#close
            explain.closing(client.get());
            client.reset();
            ::_exit(0);
        }
        // The parent. Its copy of the client socket must go, or the
        // connection stays open after the child closes it.  docs/02-multiclient.md#fork
        explain.forked(pid);
        children.add(pid);
        children.prune();  // forget the ones the handler has reaped
        log.info(peer, " connected, child ", pid);
        explain.note("close(fd " + std::to_string(client.get()) +
                         ") in the parent drops only its reference: the child still holds the "
                         "socket, so no FIN is sent",
                     "02-multiclient.md#fork");
        // [lesson:parent-close]
        client.reset();
        // [/lesson]
    }

    // SIGINT/SIGTERM: no more accepts; end every child, reap it, exit 0.
    listener.reset();
    const std::size_t ended = children.end_all();
    log.info("shutting down, ended ", ended, " child(ren)");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const common::ServerOptions opts = common::parse_server_options(argc, argv, "7002");
    common::Logger log;  // stderr until --log-file or --daemon says otherwise
    try {
        return run(opts, log);
    } catch (const std::exception& e) {
        log.fatal(e.what());  // e.g. "bind 0.0.0.0:7002: Address already in use"
        return 1;
    }
}
