// step2_multiclient/server.cpp: the chat relay: one process, select().
//
// Read it beside docs/02-multiclient.md. One process sees every client's
// socket, so it can pass a line from one client to all the others. The loop:
//
//     socket -> bind -> listen -> loop { select -> accept | recv | send } -> close
//
// select() tells us which sockets are ready. The sockets are non-blocking, so
// recv() and send() never wait for one client while the others wait for us.
// That has a price: a line may arrive in pieces (each client gets an input
// buffer), and a client may take our output slower than others produce it
// (each client gets an output queue, bounded: a client that falls 1 MiB
// behind is dropped instead of growing our memory without end).
//
// The chat rules live in chat.hpp, which never touches a socket. What every
// relay does the same way (one Connection object per client, carrying out
// the Room's decisions, flow control, accept) lives in relay.hpp. This file
// is the loop: what to wait for, select(), and who is ready. Stage 3 (TLS)
// changes only Connection's read_some/write_some and adds a handshake.

#include <sys/select.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>

#include "../common/daemon.hpp"
#include "../common/error.hpp"
#include "../common/explain.hpp"
#include "../common/fd.hpp"
#include "../common/log.hpp"
#include "../common/net.hpp"
#include "../common/options.hpp"
#include "../common/signals.hpp"
#include "relay.hpp"

namespace {

using relay::Clock;

// Descriptors the server needs besides its clients (stdio, listener, signal
// pipe, log file, the few connections being refused) stay below FD_SETSIZE too.
constexpr long kMaxClientsLimit = FD_SETSIZE - 16;

class Server : public relay::Relay {
  public:
    Server(relay::Context& ctx, common::Fd listener, long max_clients)
        : Relay(ctx, std::move(listener), max_clients, tuning::kAcceptBatchSelect) {}

    // Steps 5-9, until SIGINT or SIGTERM.
    void run();
    // Step 10: tell everyone, flush for at most 2 s, close everything.
    void shut_down();

  private:
    int wait_for_events(fd_set& readable, fd_set& writable,
                        std::optional<Clock::time_point> deadline);
    void serve_ready(fd_set& readable, fd_set& writable);
    std::unique_ptr<relay::Connection> make_connection(chat::ClientId id, common::Fd fd,
                                                       const std::string& peer) override;
};

void Server::run() {
    while (!ctx_.signals.stop_requested()) {
        // Steps 5-6: wait until a socket is ready or a signal arrives.
        fd_set readable, writable;
        const int ready = wait_for_events(readable, writable, std::nullopt);
        if (ready < 0) continue;  // EINTR: look at the clock and flags again
        serve_ready(readable, writable);
    }
}

// Steps 7-9: every descriptor that is ready. Nothing here waits: a socket
// that has nothing (more) gives EAGAIN.
void Server::serve_ready(fd_set& readable, fd_set& writable) {
    // Step 7: a signal? SIGINT/SIGTERM end the loop, SIGHUP reopens the log.
    // [lesson:dispatch]
    if (FD_ISSET(ctx_.signals.fd(), &readable)) {
        ctx_.signals.drain();
        if (ctx_.signals.take_reload_request()) ctx_.log.reopen();
    }
    // Step 8: new connections waiting in the accept queue (relay.cpp:
    // accept4, the server-full rule).  docs/01-echo.md#accept
    if (accepting() && FD_ISSET(listener_.get(), &readable)) accept_clients();
    // Step 9: every client that is ready: read, then write.
    each_client([&](relay::Connection& c) {
        if (!c.dead && FD_ISSET(c.fd(), &readable)) on_readable(c);
        if (!c.dead && FD_ISSET(c.fd(), &writable)) on_writable(c);
    });
    // [/lesson]
    flush_output();  // the lines this pass produced: send them now
    sweep();
}

// Steps 5-6: build the descriptor sets and call select().
int Server::wait_for_events(fd_set& readable, fd_set& writable,
                            std::optional<Clock::time_point> deadline) {
    // Deadlines, flow control: when must select() return at the latest?
    const std::optional<Clock::time_point> wake_at = before_wait(deadline);

    // Step 5: which descriptors we care about, and for what. select()
    // overwrites the sets, so they are rebuilt before every call.
    // docs/02-multiclient.md#select
    // [lesson:fd-sets]
    FD_ZERO(&readable);
    FD_ZERO(&writable);
    int max_fd = ctx_.signals.fd();
    FD_SET(ctx_.signals.fd(), &readable);
    if (accepting()) {
        FD_SET(listener_.get(), &readable);
        max_fd = std::max(max_fd, listener_.get());
    }
    for (auto& [id, c] : clients_) {
        // Every descriptor here is below FD_SETSIZE: make_connection() made
        // sure. Read unless it sent EOF, or the room cannot take more of its
        // lines now (flow control: docs/02-multiclient.md#the-slow-reader).
        if (wants_read(*c)) FD_SET(c->fd(), &readable);
        // Writability only while something is queued: an idle socket is
        // almost always writable, and asking would wake us for nothing.
        if (c->wants_write()) FD_SET(c->fd(), &writable);
        max_fd = std::max(max_fd, c->fd());
    }
    // [/lesson]
    timeval timeout = relay::timeval_until(wake_at.value_or(Clock::time_point{}));

    // Step 6: sleep until one of them is ready. select() returns how many
    // are; the sets now hold only the ready ones.  docs/02-multiclient.md#select
    // [lesson:select]
    const int ready =
        ::select(max_fd + 1, &readable, &writable, nullptr, wake_at ? &timeout : nullptr);
    if (ready < 0) {
        if (errno == EINTR) return -1;  // a signal: the self-pipe says which
        common::throw_errno("select");
    }
    ctx_.explain.selected(ready, &readable, &writable, max_fd);
    return ready;
    // [/lesson]
}

// Step 8, after accept(): FD_SET on a descriptor >= FD_SETSIZE writes past
// the end of the fd_set: never let one reach it.  docs/02-multiclient.md#fd_setsize
std::unique_ptr<relay::Connection> Server::make_connection(chat::ClientId id, common::Fd fd,
                                                           const std::string& peer) {
    // [lesson:fd-setsize]
    if (fd.get() >= FD_SETSIZE) {
        ctx_.log.info(peer, " refused: descriptor ", fd.get(), " >= FD_SETSIZE");
        ctx_.explain.closing(fd.get());
        return nullptr;  // Fd closes it
    }
    // [/lesson]
    return Relay::make_connection(id, std::move(fd), peer);
}

// Step 10: SIGINT/SIGTERM. Stop accepting, say goodbye, flush for at most
// 2 s, close everything.  docs/02-multiclient.md#shutting-down
void Server::shut_down() {
    const Clock::time_point deadline = begin_shutdown();
    while (!clients_.empty()) {
        fd_set readable, writable;
        const int ready = wait_for_events(readable, writable, deadline);
        if (ready < 0) continue;
        serve_ready(readable, writable);
    }
}

}  // namespace

int main(int argc, char** argv) {
    const relay::Options opts = relay::parse_options(argc, argv, "7002", 1000, kMaxClientsLimit);
    // relay.hpp: the log, the signal pipe, --daemon, run(), then shut_down().
    return relay::serve(opts.server, [&](relay::Context& ctx) {
        // Steps 1-4, as in stage 1 (listener.cpp).  docs/01-echo.md#socket
        common::Fd listener = relay::open_listener(opts.server, ctx);
        // select() can watch only descriptors below FD_SETSIZE; a process started
        // with a thousand descriptors already open cannot use it at all.
        // docs/02-multiclient.md#fd_setsize
        relay::require_below_fd_setsize({listener.get(), ctx.signals.fd()});
        return Server(ctx, std::move(listener), opts.max_clients);
    });
}
