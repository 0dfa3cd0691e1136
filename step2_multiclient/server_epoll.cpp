// step2_multiclient/server_epoll.cpp: the same chat relay on epoll.
//
// Read it beside server.cpp (`diff server.cpp server_epoll.cpp`) and
// docs/02-multiclient.md#select-poll-and-epoll. select() scans every client on
// every wake-up, idle ones included, and FD_SETSIZE (1024) caps them. epoll
// keeps the interest list in the kernel (epoll_ctl, once per client), and
// epoll_wait() hands back only the ready ones. The loop:
//
//     socket -> bind -> listen -> epoll_create1
//            -> loop { epoll_wait -> accept + epoll_ctl | recv | send } -> close
//
// epoll_wait() tells us which sockets are ready. The sockets are non-blocking, so
// recv() and send() never wait for one client while the others wait for us.
// That has a price: a line may arrive in pieces (each client gets an input
// buffer), and a client may take our output slower than others produce it
// (each client gets an output queue, bounded: a client that falls 1 MiB
// behind is dropped instead of growing our memory without end).
//
// The chat rules live in chat.hpp, which never touches a socket. What every
// relay does the same way (one Connection object per client, carrying out
// the Room's decisions, flow control, accept) lives in relay.hpp. This file
// is the loop: what to wait for, epoll_wait(), and who is ready.

#include <sys/epoll.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <optional>
#include <span>
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

// No FD_SETSIZE here: the only ceiling is RLIMIT_NOFILE, raised at start.
constexpr long kMaxClientsLimit = 1'000'000;
// Ready descriptors taken from the kernel per epoll_wait().
constexpr int kMaxEvents = 256;
// epoll_event.data for the two descriptors that are not clients (client ids
// count up from 1).
constexpr std::uint64_t kListenerKey = ~std::uint64_t{0};
constexpr std::uint64_t kSignalsKey = kListenerKey - 1;

class Server : public relay::Relay {
  public:
    Server(relay::Context& ctx, common::Fd listener, long max_clients);

    // Steps 5-9, until SIGINT or SIGTERM.
    void run();
    // Step 10: tell everyone, flush for at most 2 s, close everything.
    void shut_down();

  private:
    std::span<const epoll_event> wait_for_events(std::optional<Clock::time_point> deadline);
    void serve_ready(std::span<const epoll_event> ready);
    std::unique_ptr<relay::Connection> make_connection(chat::ClientId id, common::Fd fd,
                                                       const std::string& peer) override;
    void interest_changed(relay::Connection& c) override;

    common::Fd epoll_;
    std::array<epoll_event, kMaxEvents> events_;  // what epoll_wait() reports
    bool listener_watched_ = true;                // the listener is in the interest list
};

// Step 4b: an epoll instance, told once about the signal pipe and the
// listener. Clients are added as they are accepted.  docs/02-multiclient.md#epoll
Server::Server(relay::Context& ctx, common::Fd listener, long max_clients)
    : Relay(ctx, std::move(listener), max_clients, tuning::kAcceptBatch),
      epoll_(common::check(::epoll_create1(EPOLL_CLOEXEC), "epoll_create1")) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kSignalsKey;
    common::check(::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, ctx_.signals.fd(), &ev), "epoll_ctl ADD",
                  "signal pipe");
    ev.data.u64 = kListenerKey;
    common::check(::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, listener_.get(), &ev), "epoll_ctl ADD",
                  "listener");
}

void Server::run() {
    while (!ctx_.signals.stop_requested()) {
        // Steps 5-6: wait until a socket is ready or a signal arrives.
        serve_ready(wait_for_events(std::nullopt));
    }
}

// Steps 7-9: every descriptor that is ready. Nothing here waits: a socket
// that has nothing (more) gives EAGAIN.
void Server::serve_ready(std::span<const epoll_event> ready) {
    for (const epoll_event& event : ready) {
        // Step 7: a signal? SIGINT/SIGTERM end the loop, SIGHUP reopens the log.
        if (event.data.u64 == kSignalsKey) {
            ctx_.signals.drain();
            if (ctx_.signals.take_reload_request()) ctx_.log.reopen();
            continue;
        }
        // Step 8: new connections waiting in the accept queue (relay.cpp:
        // accept4, the server-full rule).  docs/01-echo.md#accept
        if (event.data.u64 == kListenerKey) {
            if (accepting()) accept_clients();
            continue;
        }
        // Step 9: a client that is ready: read, then write. A hang-up or an
        // error is reported until read, even while we do not ask for input.
        relay::Connection* c = find(static_cast<chat::ClientId>(event.data.u64));
        if (c == nullptr || c->dead) continue;
        const bool hung_up = (event.events & (EPOLLHUP | EPOLLERR)) != 0;
        if ((event.events & EPOLLIN) || hung_up) on_readable(*c, hung_up);
        if (!c->dead && (event.events & EPOLLOUT)) on_writable(*c);
        if (!c->dead) interest_changed(*c);
    }
    flush_output();  // the lines this pass produced: send them now
    sweep();
}

// Tell epoll what we wait for on this client now: input unless it sent EOF
// or the room cannot take its lines, and EPOLLOUT only while something is
// queued (an idle socket is almost always writable, and asking would wake us
// for nothing). A client with new lines waits for flush_output(): watching
// it now would add EPOLLOUT only for the flush to take it off again.
// docs/02-multiclient.md#epoll
void Server::interest_changed(relay::Connection& c) {
    const std::uint32_t want = (wants_read(c) ? EPOLLIN : 0u) | (c.wants_write() ? EPOLLOUT : 0u);
    if (want == c.watched || c.dead || c.flush_listed) return;
    epoll_event ev{};
    ev.events = want;
    ev.data.u64 = static_cast<std::uint64_t>(c.id());
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c.fd(), &ev) == 0) c.watched = want;
}

// Steps 5-6: close what is due, then epoll_wait().
std::span<const epoll_event> Server::wait_for_events(std::optional<Clock::time_point> deadline) {
    // Deadlines, flow control: when must epoll_wait() return at the latest?
    const std::optional<Clock::time_point> wake_at = before_wait(deadline);

    // Step 5: the interest list is in the kernel already; only the listener
    // leaves it while accept() is paused (EMFILE), and comes back after.
    if (listener_ && accepting() != listener_watched_) {
        epoll_event ev{.events = EPOLLIN, .data = {.u64 = kListenerKey}};
        ::epoll_ctl(epoll_.get(), accepting() ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, listener_.get(),
                    &ev);
        listener_watched_ = accepting();
    }
    const int timeout_ms = wake_at ? relay::milliseconds_until(*wake_at) : -1;  // -1: no limit

    // Step 6: sleep until a descriptor is ready. epoll_wait() fills `events_`
    // with the ready ones only (at most kMaxEvents; the rest next time).
    // docs/02-multiclient.md#epoll
    const int ready =
        ::epoll_wait(epoll_.get(), events_.data(), static_cast<int>(events_.size()), timeout_ms);
    if (ready < 0) {
        if (errno == EINTR) return {};  // a signal: the self-pipe says which
        common::throw_errno("epoll_wait");
    }
    ctx_.explain.woke("epoll_wait", ready);
    return std::span(events_.data(), static_cast<std::size_t>(ready));
}

// Step 8, after accept(): register it once; from now on epoll_wait() names
// it only when it is ready.  docs/02-multiclient.md#epoll
std::unique_ptr<relay::Connection> Server::make_connection(chat::ClientId id, common::Fd fd,
                                                           const std::string& peer) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = static_cast<std::uint64_t>(id);
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd.get(), &ev) < 0) {
        ctx_.log.info(peer, " refused: epoll_ctl: ", std::generic_category().message(errno));
        return nullptr;  // Fd closes it
    }
    return Relay::make_connection(id, std::move(fd), peer);
}

// Step 10: SIGINT/SIGTERM. Stop accepting, say goodbye, flush for at most
// 2 s, close everything.  docs/02-multiclient.md#shutting-down
void Server::shut_down() {
    const Clock::time_point deadline = begin_shutdown();
    while (!clients_.empty())
        serve_ready(wait_for_events(deadline));
}

}  // namespace

int main(int argc, char** argv) {
    const relay::Options opts = relay::parse_options(argc, argv, "7002", 10000, kMaxClientsLimit);
    // relay.hpp: the log, the signal pipe, --daemon, run(), then shut_down().
    return relay::serve(opts.server, [&](relay::Context& ctx) {
        relay::raise_descriptor_limit(ctx.log, opts.max_clients);  // docs/02-multiclient.md#epoll
        // Steps 1-4, as in stage 1 (listener.cpp).  docs/01-echo.md#socket
        common::Fd listener = relay::open_listener(opts.server, ctx);
        return Server(ctx, std::move(listener), opts.max_clients);
    });
}
