// step1_echo/server.cpp: an iterative TCP echo server.
//
// Read it beside docs/01-echo.md. The life of a TCP server in five calls:
//
//     socket -> bind -> listen -> accept -> recv/send ... -> close
//
// "Iterative" means one client at a time: while this server talks to one
// client, the next one's handshake completes in the kernel and the connection
// waits in the accept queue until we call accept() again. Stage 2 shows why
// that is not enough, and what to do instead.

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <array>
#include <cstdio>
#include <exception>
#include <string>

#include "../common/daemon.hpp"
#include "../common/error.hpp"
#include "../common/explain.hpp"
#include "../common/fd.hpp"
#include "../common/log.hpp"
#include "../common/net.hpp"
#include "../common/options.hpp"
#include "../common/signals.hpp"

namespace {

// How many finished handshakes the kernel may queue for us: listen()'s backlog (step 4).
constexpr int kBacklog = 16;

// The objects every part of the server needs, owned by main().
struct Context {
    common::Logger& log;
    common::Explain& explain;
    common::Signals& signals;
};

// Steps 1-4: a socket that the kernel will accept connections on.
common::Fd open_listener(const common::ServerOptions& opts, Context& ctx) {
    // getaddrinfo turns "0.0.0.0", "::1" or "localhost" into a socket address.
    const auto addresses = common::resolve(opts.bind, opts.port, /*passive=*/true);
    const common::Address& addr = addresses.front();  // the name's preferred address
    const std::string where = common::format_address(addr);

    // [docs:socket]
    // Step 1: ask the kernel for a TCP socket.  docs/01-echo.md#socket
    common::Fd listener(
        common::check(::socket(addr.family, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket", where));
    // [/docs]
    ctx.explain.socket(listener.get(), addr.family);

    // [docs:setsockopt]
    // Step 2: let bind() reuse the port while connections of an earlier run
    // still sit in TIME_WAIT.  docs/01-echo.md#setsockopt
    const int on = 1;
    common::check(::setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on),
                  "setsockopt SO_REUSEADDR", where);
    // [/docs]
    ctx.explain.setsockopt(listener.get(), "SO_REUSEADDR");

    // [docs:bind]
    // Step 3: claim the local address and port.  docs/01-echo.md#bind
    common::check(::bind(listener.get(), addr.sa(), addr.length), "bind", where);
    // [/docs]
    ctx.explain.bind(listener.get(), common::local_address(listener.get()));

    // [docs:listen]
    // Step 4: become a listening socket; the kernel now completes handshakes
    // for us and queues them.  docs/01-echo.md#listen
    common::check(::listen(listener.get(), kBacklog), "listen", where);
    // [/docs]
    ctx.explain.listen(listener.get(), kBacklog);
    return listener;
}

// [docs:poll]
// Wait until `fd` is ready for `events` or a signal arrives. Returns false
// when the server should stop.
bool wait_for(int fd, short events, Context& ctx) {
    while (!ctx.signals.stop_requested()) {
        std::array<pollfd, 2> fds = {{{fd, events, 0}, {ctx.signals.fd(), POLLIN, 0}}};
        // docs/01-echo.md#poll
        const int ready = ::poll(fds.data(), fds.size(), -1);
        if (ready < 0) {
            if (errno == EINTR) continue;  // a signal: the pipe tells us which
            common::throw_errno("poll");
        }
        ctx.explain.polled(fds, ready);
        if (fds[1].revents != 0) {
            ctx.signals.drain();
            if (ctx.signals.stop_requested()) return false;
            if (ctx.signals.take_reload_request()) ctx.log.reopen();
        }
        if (fds[0].revents != 0) return true;
    }
    return false;
}
// [/docs]

// Step 6: echo everything one client sends until it half-closes or vanishes.
// Returns the number of bytes echoed, and why the connection ended.
struct Outcome {
    unsigned long long bytes = 0;
    std::string reason;  // empty: the client closed normally
};

Outcome echo(int client, Context& ctx) {
    Outcome out;
    // 256 KiB: on loopback a bulk sender fills the receive queue faster than
    // we empty it, so one big recv() takes what four 64 KiB ones would, and
    // each 64 KiB we do not split saves a poll(), a recv() and a send()
    // (this halved the server's CPU per megabyte: docs/01-echo.md#recv).
    std::array<char, 256 * 1024> buffer;
    while (wait_for(client, POLLIN, ctx)) {
        // [docs:recv]
        // Whatever arrived so far: one byte or 256 KiB.  docs/01-echo.md#recv
        const ssize_t got = ::recv(client, buffer.data(), buffer.size(), 0);
        if (got < 0) {
            if (common::is_transient(errno)) continue;
            out.reason = std::generic_category().message(errno);  // e.g. a reset (RST)
            return out;
        }
        ctx.explain.received(client, static_cast<std::size_t>(got));
        if (got == 0) return out;  // the client's FIN: it will send no more
        // [/docs]

        // [docs:send]
        // send() may take only part of it when the send buffer is full, so
        // send the rest after poll() says there is room.  docs/01-echo.md#send
        std::size_t sent = 0;
        while (sent < static_cast<std::size_t>(got)) {
            const ssize_t n =
                ::send(client, buffer.data() + sent, got - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0) {
                if (common::is_transient(errno)) {
                    if (!wait_for(client, POLLOUT, ctx)) return out;
                    continue;
                }
                out.reason = std::generic_category().message(errno);  // EPIPE, ECONNRESET
                return out;
            }
            ctx.explain.sent(client, static_cast<std::size_t>(n));
            sent += static_cast<std::size_t>(n);
            out.bytes += static_cast<unsigned long long>(n);
        }
        // [/docs]
    }
    out.reason = "server shutting down";
    return out;
}

int run(const common::ServerOptions& opts, common::Logger& log) {
    if (!opts.log_file.empty()) log.open_file(opts.log_file);
    common::Explain explain(opts.explain);
    common::Signals signals;  // SIGINT/SIGTERM stop us, SIGHUP reopens the log
    Context ctx{log, explain, signals};

    common::Fd listener = open_listener(opts, ctx);
    common::Service service =
        common::start_service(opts, log, common::local_address(listener.get()));

    // [docs:accept]
    // Step 5: take the next finished handshake off the accept queue.
    bool accept_failing = false;
    while (wait_for(listener.get(), POLLIN, ctx)) {
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
        // [/docs]
        accept_failing = false;
        const std::string peer =
            common::format_address(reinterpret_cast<sockaddr*>(&peer_addr), peer_len);
        explain.accepted(listener.get(), client.get(), peer);
        log.info(peer, " connected");

        const Outcome outcome = echo(client.get(), ctx);

        // [docs:close]
        // Step 7: close our side. If the client closed first (the usual case)
        // our FIN answers its FIN and the client keeps TIME_WAIT.
        // docs/01-echo.md#close
        explain.closing(client.get());
        client.reset();
        // [/docs]
        log.info(peer, " closed, ", outcome.bytes, " bytes",
                 outcome.reason.empty() ? "" : " (" + outcome.reason + ")");
    }
    log.info("shutting down");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const common::ServerOptions opts = common::parse_server_options(argc, argv, "7001");
    common::Logger log;  // stderr until --log-file or --daemon says otherwise
    try {
        return run(opts, log);
    } catch (const std::exception& e) {
        log.fatal(e.what());  // e.g. "bind 0.0.0.0:7001: Address already in use"
        return 1;
    }
}
