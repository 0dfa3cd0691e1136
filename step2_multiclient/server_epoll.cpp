// step2_multiclient/server_epoll.cpp: the same chat relay on epoll.
//
// Read it beside server.cpp (`diff server.cpp server_epoll.cpp`) and
// docs/02-multiclient.md#select-poll-and-epoll. select() is handed every
// descriptor on every call and the kernel scans them all, then we scan them
// all again: the cost of one wake-up grows with the number of clients, idle
// ones included, and FD_SETSIZE (1024) caps them. epoll keeps the interest
// list in the kernel, registered once per client (epoll_ctl), and
// epoll_wait() hands back only the ready ones: a ready list instead of a
// scan. The loop:
//
//     socket -> bind -> listen -> epoll_create1
//            -> loop { epoll_wait -> accept + epoll_ctl | recv | send } -> close
//
// The sockets are non-blocking, so recv() and send() never wait for one
// client while the others wait for us.
// That has a price: a line may arrive in pieces (each client gets an input
// buffer), and a client may take our output slower than others produce it
// (each client gets an output queue, bounded: a client that falls 1 MiB
// behind is dropped instead of growing our memory without end).
//
// The chat rules live in chat.hpp, which never touches a socket. This file
// only moves bytes between sockets and that Room. Stage 3 (TLS) changes only
// Connection's read_some/write_some and adds a handshake; the loop stays.

#include <malloc.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../common/daemon.hpp"
#include "../common/error.hpp"
#include "../common/explain.hpp"
#include "../common/fd.hpp"
#include "../common/log.hpp"
#include "../common/net.hpp"
#include "../common/options.hpp"
#include "../common/signals.hpp"
#include "chat.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// How many finished handshakes the kernel may queue for us. Thousands of
// clients may connect at once; when the queue is full the kernel drops their
// SYNs and each waits a 1 s retransmission.  docs/01-echo.md#listen
constexpr int kBacklog = 1024;
// No FD_SETSIZE here: the only ceiling is RLIMIT_NOFILE, raised at start.
constexpr long kMaxClientsLimit = 1'000'000;
// Ready descriptors taken from the kernel per epoll_wait().
constexpr int kMaxEvents = 256;
// epoll_event.data for the two descriptors that are not clients (client ids
// count up from 1).
constexpr std::uint64_t kListenerKey = ~std::uint64_t{0};
constexpr std::uint64_t kSignalsKey = kListenerKey - 1;
// At most this much is read from one client per wake-up, so one fast sender
// cannot starve the rest.
constexpr std::size_t kReadSize = 64 * 1024;
// Backpressure: while a client that is still reading has more than this
// queued, the server stops reading from everyone, so senders slow down to the
// pace of the slowest reader (their send() waits, on their side) instead of
// burying it. A client may hold everyone back for at most kMaxStall at a
// time; one that does not catch up by then no longer counts, its queue grows
// past kMaxUnsent, and it is dropped.  docs/02-multiclient.md#the-slow-reader
constexpr std::size_t kPauseReading = 256 * 1024;
constexpr auto kMaxStall = 1s;
// A leaving client gets this long to take its last lines and close.
constexpr auto kCloseTimeout = 2s;
// Refused ("server full") clients are closed politely too; at most this many
// at once, so that a flood of them cannot hold many descriptors.
constexpr std::size_t kMaxRefusing = 4;
// SIGINT/SIGTERM: flush for at most this long, then close everything.
constexpr auto kShutdownFlush = 2s;
// accept() failed for lack of descriptors: look at the listener again after this.
constexpr auto kAcceptPause = 100ms;

// The objects every part of the server needs, owned by run().
struct Context {
    common::Logger& log;
    common::Explain& explain;
    common::Signals& signals;
};

// What one read_some()/write_some() did.
struct IoResult {
    enum Status { ok, would_block, eof, error } status;
    std::size_t bytes = 0;
    int error_code = 0;  // errno for `error`
};

// Read and forget what a client sent that we will never process: closing a
// socket with unread input makes the kernel answer with RST instead of FIN,
// and the peer may then lose the last lines we sent it.
// docs/02-multiclient.md#closing-politely
void discard_input(int fd) {
    std::array<char, 16 * 1024> scratch;
    for (int i = 0; i < 16; ++i) {
        if (::recv(fd, scratch.data(), scratch.size(), MSG_DONTWAIT) <= 0) return;
    }
}

// One connected client: its descriptor, its bounded output queue, and where
// it is in its life. Its nick and input buffer live in the chat::Room, which
// knows it by `id`. docs/02-multiclient.md#one-object-per-client
class Connection {
  public:
    Connection(chat::ClientId id, common::Fd fd, std::string peer)
        : id_(id), fd_(std::move(fd)), peer_(std::move(peer)) {}

    chat::ClientId id() const { return id_; }
    int fd() const { return fd_.get(); }
    const std::string& peer() const { return peer_; }

    // recv() whatever has arrived: bytes, EOF (the peer's FIN), "nothing
    // yet", or an error such as a reset.  docs/01-echo.md#recv
    IoResult read_some(std::span<char> buffer) {
        const ssize_t got = ::recv(fd(), buffer.data(), buffer.size(), 0);
        if (got > 0) return {IoResult::ok, static_cast<std::size_t>(got)};
        if (got == 0) return {IoResult::eof};
        if (common::is_transient(errno)) return {IoResult::would_block};
        return {IoResult::error, 0, errno};
    }

    // Send as much of the queue as the kernel takes now, in one sendmsg()
    // (gathering several queued chunks). Partial writes are normal: the
    // rest stays queued until epoll_wait() says EPOLLOUT.
    // docs/02-multiclient.md#partial-writes
    IoResult write_some() {
        std::array<iovec, 256> iov;
        std::size_t count = 0;
        for (auto it = queue_.begin() + static_cast<long>(head_);
             it != queue_.end() && count < iov.size(); ++it, ++count) {
            const std::string& chunk = **it;
            const std::size_t skip = count == 0 ? front_offset_ : 0;
            iov[count] = {const_cast<char*>(chunk.data()) + skip, chunk.size() - skip};
        }
        msghdr msg{};
        msg.msg_iov = iov.data();
        msg.msg_iovlen = count;
        // MSG_NOSIGNAL: a vanished peer gives EPIPE, not a fatal SIGPIPE.
        const ssize_t n = ::sendmsg(fd(), &msg, MSG_NOSIGNAL);  // docs/01-echo.md#send
        if (n < 0) {
            if (common::is_transient(errno)) return {IoResult::would_block};
            return {IoResult::error, 0, errno};
        }
        consume(static_cast<std::size_t>(n));
        return {IoResult::ok, static_cast<std::size_t>(n)};
    }

    void queue(chat::Chunk chunk, Clock::time_point now) {
        if (unsent_ <= kPauseReading && unsent_ + chunk->size() > kPauseReading) behind_since = now;
        unsent_ += chunk->size();
        // An empty queue has no memory (see consume()); start it with room
        // for a burst, instead of growing it 1, 2, 4, 8 ... line by line.
        if (queue_.capacity() == 0) queue_.reserve(16);
        queue_.push_back(std::move(chunk));
    }
    std::size_t unsent() const { return unsent_; }
    bool wants_write() const { return unsent_ > 0 && !write_shut; }

    // Where the connection is in its life.
    bool leaving = false;   // the Room let it go: flush, then close
    bool peer_eof = false;  // recv() returned 0
    bool write_shut = false;
    bool dead = false;     // close it at the end of this pass
    bool refused = false;  // server full: "* error: server full", then a polite close
    std::string close_reason;
    std::string nick;                  // for log lines, kept after the Room has let it go
    Clock::time_point close_by{};      // a leaving client's deadline
    Clock::time_point behind_since{};  // when its queue last passed kPauseReading
    std::uint32_t events = EPOLLIN;    // what epoll watches for it now
    bool flush_listed = false;         // in Server::to_flush_
    bool reading_paused = false;       // in Server::paused_ (backpressure)

    // Is it far behind, but recently enough that the others should wait for it?
    bool holds_back_senders(Clock::time_point now) const {
        return !leaving && unsent_ > kPauseReading && now - behind_since < kMaxStall;
    }

  private:
    void consume(std::size_t n) {
        unsent_ -= n;
        while (n > 0) {
            const std::size_t left = queue_[head_]->size() - front_offset_;
            if (n < left) {
                front_offset_ += n;
                return;
            }
            n -= left;
            queue_[head_++].reset();  // this client's share of the line
            front_offset_ = 0;
        }
        // All sent: give the queue's memory back. An idle client then costs
        // only this object, not a buffer sized for its busiest moment.
        if (head_ == queue_.size()) {
            std::vector<chat::Chunk>().swap(queue_);
            head_ = 0;
        }
    }

    chat::ClientId id_;
    common::Fd fd_;
    std::string peer_;
    std::vector<chat::Chunk> queue_;  // shared lines, each sent once to this client
    std::size_t head_ = 0;            // queue_[head_] is the next to send
    std::size_t front_offset_ = 0;    // bytes of queue_[head_] already sent
    std::size_t unsent_ = 0;          // bytes queued and not yet sent
};

class Server {
  public:
    Server(Context& ctx, common::Fd listener, long max_clients);

    // Steps 5-9, until SIGINT or SIGTERM.
    void run();
    // Step 10: tell everyone, flush for at most 2 s, close everything.
    void shut_down();

  private:
    int wait_for_events(std::span<epoll_event> events, std::optional<Clock::time_point> deadline);
    void handle(const epoll_event& event);
    void watch(Connection& c);
    void flush_output();
    void mark_dead(Connection& c);
    void accept_clients();
    void on_readable(Connection& c);
    void on_writable(Connection& c);
    void progress_close(Connection& c, Clock::time_point now);
    void apply(chat::Effects effects);
    void drop(Connection& c, chat::LostReason why, const std::string& reason);
    void sweep();
    Connection* find(chat::ClientId id);

    Context& ctx_;
    common::Fd listener_;
    common::Fd epoll_;
    long max_clients_;
    chat::Room room_;
    // Looked up once per delivered line: a hash table, not a tree.
    std::unordered_map<chat::ClientId, Connection> clients_;
    chat::ClientId next_id_ = 1;
    bool stopping_ = false;
    std::optional<Clock::time_point> accept_paused_until_;
    std::set<chat::ClientId> leaving_;      // clients with a close deadline
    std::vector<chat::ClientId> dead_;      // to close at the end of this pass
    std::vector<chat::ClientId> to_flush_;  // got new lines in this pass
    std::set<chat::ClientId> behind_;       // more than kPauseReading queued
    std::vector<chat::ClientId> paused_;    // not read until !throttled_
    bool throttled_ = false;                // a reader is far behind
    std::size_t sent_since_trim_ = 0;       // bytes, for malloc_trim()
    Clock::time_point last_trim_{};
    bool out_of_descriptors_ = false;  // the last accept() failed with EMFILE
    std::size_t refusing_ = 0;         // refused clients still being closed
};

// Steps 1-4, as in stage 1, plus O_NONBLOCK: accept() must never wait.
common::Fd open_listener(const common::ServerOptions& opts, Context& ctx) {
    const auto addresses = common::resolve(opts.bind, opts.port, /*passive=*/true);
    const common::Address& addr = addresses.front();
    const std::string where = common::format_address(addr);

    // Step 1: a TCP socket.  docs/01-echo.md#socket
    common::Fd listener(common::check(
        ::socket(addr.family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), "socket", where));
    ctx.explain.socket(listener.get(), addr.family);

    // Step 2: reuse the port despite TIME_WAIT.  docs/01-echo.md#setsockopt
    const int on = 1;
    common::check(::setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on),
                  "setsockopt SO_REUSEADDR", where);
    ctx.explain.setsockopt(listener.get(), "SO_REUSEADDR");

    // Step 3: claim the address.  docs/01-echo.md#bind
    common::check(::bind(listener.get(), addr.sa(), addr.length), "bind", where);
    ctx.explain.bind(listener.get(), common::local_address(listener.get()));

    // Step 4: listen.  docs/01-echo.md#listen
    common::check(::listen(listener.get(), kBacklog), "listen", where);
    ctx.explain.listen(listener.get(), kBacklog);
    return listener;
}

// Step 4b: an epoll instance, told once about the signal pipe and the
// listener. Clients are added as they are accepted.
Server::Server(Context& ctx, common::Fd listener, long max_clients)
    : ctx_(ctx), listener_(std::move(listener)), max_clients_(max_clients) {
    // docs/02-multiclient.md#epoll
    epoll_.reset(common::check(::epoll_create1(EPOLL_CLOEXEC), "epoll_create1"));
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
    std::array<epoll_event, kMaxEvents> events;
    while (!ctx_.signals.stop_requested()) {
        // Steps 5-6: wait until a socket is ready or a signal arrives.
        const int ready = wait_for_events(events, std::nullopt);

        // Steps 7-9: only the descriptors that are ready; the idle ones cost
        // nothing here. Nothing waits: a socket with nothing (more) gives EAGAIN.
        for (int i = 0; i < ready; ++i)
            handle(events[i]);
        flush_output();
        sweep();
    }
}

// Steps 7-9 for one ready descriptor.
void Server::handle(const epoll_event& event) {
    // Step 7: a signal? SIGINT/SIGTERM end the loop, SIGHUP reopens the log.
    if (event.data.u64 == kSignalsKey) {
        ctx_.signals.drain();
        if (ctx_.signals.take_reload_request()) ctx_.log.reopen();
        return;
    }
    // Step 8: new connections waiting in the accept queue.
    if (event.data.u64 == kListenerKey) {
        accept_clients();
        return;
    }
    // Step 9: a client is ready: read, then write.
    Connection* c = find(static_cast<chat::ClientId>(event.data.u64));
    if (c == nullptr || c->dead) return;
    if (throttled_ && !c->leaving && (event.events & (EPOLLHUP | EPOLLERR)) == 0) {
        // Backpressure: leave its input in the kernel, and stop asking
        // epoll about it until the slow reader catches up.
        if (!c->reading_paused) {
            c->reading_paused = true;
            paused_.push_back(c->id());
        }
    } else if (event.events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        on_readable(*c);
    }
    if (!c->dead && (event.events & EPOLLOUT)) on_writable(*c);
    // A client with new lines is sent to, then watched, by flush_output()
    // after this pass: watching it now would add EPOLLOUT only for the flush
    // to take it off again, two epoll_ctl() calls for nothing.
    if (!c->dead && !c->flush_listed) watch(*c);
}

// Tell epoll what we wait for on this client now: input unless it sent EOF,
// and EPOLLOUT only while something is queued (an idle socket is almost
// always writable, and asking would wake us for nothing).
// docs/02-multiclient.md#epoll
void Server::watch(Connection& c) {
    const std::uint32_t want =
        (c.peer_eof || c.reading_paused ? 0u : EPOLLIN) | (c.wants_write() ? EPOLLOUT : 0u);
    if (want == c.events) return;
    epoll_event ev{};
    ev.events = want;
    ev.data.u64 = static_cast<std::uint64_t>(c.id());
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c.fd(), &ev) == 0) c.events = want;
}

// After each wake-up: one sendmsg() to each client that got new lines, so
// they leave now instead of after another epoll_wait(); whatever the kernel
// does not take waits for EPOLLOUT.
void Server::flush_output() {
    while (!to_flush_.empty()) {
        for (chat::ClientId id : std::exchange(to_flush_, {})) {
            Connection* c = find(id);
            if (c == nullptr) continue;
            c->flush_listed = false;
            if (!c->dead && c->wants_write()) on_writable(*c);
            if (!c->dead) watch(*c);
        }
    }
}

// Steps 5-6: close what is due, then epoll_wait().
int Server::wait_for_events(std::span<epoll_event> events,
                            std::optional<Clock::time_point> deadline) {
    const auto now = Clock::now();
    for (chat::ClientId id : leaving_) {
        if (Connection* c = find(id)) progress_close(*c, now);  // deadlines passed?
    }
    sweep();
    if (accept_paused_until_ && now >= *accept_paused_until_ && listener_) {
        accept_paused_until_.reset();
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = kListenerKey;
        ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, listener_.get(), &ev);
    }

    // Backpressure: is some reader far behind? Then read from nobody. Only
    // the clients that passed kPauseReading are looked at, not all of them.
    bool throttled = false;
    for (auto it = behind_.begin(); it != behind_.end();) {
        Connection* c = find(*it);
        if (c == nullptr || c->unsent() <= kPauseReading) {
            it = behind_.erase(it);
            continue;
        }
        throttled = throttled || c->holds_back_senders(now);
        ++it;
    }
    throttled_ = throttled;
    if (!throttled_) {
        // Read again from the clients we stopped reading.
        for (chat::ClientId id : std::exchange(paused_, {})) {
            if (Connection* c = find(id)) {
                c->reading_paused = false;
                watch(*c);
            }
        }
    }

    // The earliest moment something must happen without any socket event.
    std::optional<Clock::time_point> wake_at = deadline;
    auto earliest = [&](Clock::time_point t) {
        if (!wake_at || t < *wake_at) wake_at = t;
    };
    if (accept_paused_until_) earliest(*accept_paused_until_);
    for (chat::ClientId id : leaving_) {
        if (Connection* c = find(id)) earliest(c->close_by);
    }
    for (chat::ClientId id : behind_) {
        Connection* c = find(id);
        if (c->holds_back_senders(now)) earliest(c->behind_since + kMaxStall);
    }
    // A burst (10,000 clients joining: 50 million "joined" lines) leaves the
    // heap full of freed queues that malloc keeps; hand them back to the
    // kernel a second after the last one, so idle clients cost little.
    if (sent_since_trim_ > (64u << 10)) {
        if (now - last_trim_ >= 1s) {
            ::malloc_trim(0);
            sent_since_trim_ = 0;
            last_trim_ = now;
        } else {
            earliest(last_trim_ + 1s);
        }
    }
    int timeout_ms = -1;
    if (wake_at) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(*wake_at - Clock::now());
        timeout_ms = static_cast<int>(std::max<long>(left.count(), 0));
    }

    // Step 6: sleep until a descriptor is ready. epoll_wait() fills `events`
    // with the ready ones only (at most kMaxEvents; the rest next time).
    // docs/02-multiclient.md#epoll
    const int ready =
        ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), timeout_ms);
    if (ready < 0) {
        if (errno == EINTR) return 0;  // a signal: the self-pipe says which
        common::throw_errno("epoll_wait");
    }
    ctx_.explain.woke("epoll_wait", ready);
    return ready;
}

// Step 8: take every waiting connection off the accept queue.
void Server::accept_clients() {
    // A bounded batch, then serve the others again. Larger than select's: every
    // wake-up that admits someone sends "joined" to everyone, so admitting many
    // at once is much cheaper than one wake-up per newcomer. Not the whole
    // backlog (1024) either: each newcomer adds a line to every client's
    // queue, and 10,000 queues of 1024 lines are 160 MB to allocate, fill and
    // free per wake-up (10,000 clients joining: 5.4 s of CPU with 1024 per
    // batch, 4.5 s with 256, 7.1 s with 64).
    for (int i = 0; i < 256; ++i) {
        sockaddr_storage peer_addr{};
        socklen_t peer_len = sizeof peer_addr;
        // docs/01-echo.md#accept  (SOCK_NONBLOCK: the new socket never blocks either)
        common::Fd fd(::accept4(listener_.get(), reinterpret_cast<sockaddr*>(&peer_addr), &peer_len,
                                SOCK_CLOEXEC | SOCK_NONBLOCK));
        if (!fd) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;  // the queue is empty
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO) continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                // Out of descriptors or memory. The connection stays in the
                // queue and the listener stays readable, so epoll_wait() would
                // return at once, forever: stop watching the listener for a
                // moment instead of spinning.  docs/02-multiclient.md#emfile
                if (!out_of_descriptors_) {  // one log line per episode, not ten a second
                    ctx_.log.info("accept: ", std::generic_category().message(errno),
                                  "; pausing accept for ", kAcceptPause.count(), " ms at a time");
                }
                out_of_descriptors_ = true;
                accept_paused_until_ = Clock::now() + kAcceptPause;
                ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, listener_.get(), nullptr);
                return;
            }
            ctx_.log.info("accept: ", std::generic_category().message(errno));
            return;
        }
        out_of_descriptors_ = false;
        const std::string peer =
            common::format_address(reinterpret_cast<sockaddr*>(&peer_addr), peer_len);
        ctx_.explain.accepted(listener_.get(), fd.get(), peer);

        // Server full: the newcomer gets the error line and a polite close
        // (FIN after the line, its input read until its own FIN): closing
        // at once, with its first bytes unread, would send RST instead.
        // A few at a time; beyond that they are closed at once.
        const bool full = static_cast<long>(clients_.size() - refusing_) >= max_clients_;
        if (full && refusing_ >= kMaxRefusing) {
            // One short line fits in the empty send buffer: this send() does
            // not block, and if it fails there is nothing more to do anyway.
            const chat::Chunk line = chat::server_full();
            const ssize_t n = ::send(fd.get(), line->data(), line->size(),
                                     MSG_NOSIGNAL | MSG_DONTWAIT);  // docs/01-echo.md#send
            if (n > 0) ctx_.explain.sent(fd.get(), static_cast<std::size_t>(n));
            discard_input(fd.get());  // what it already sent: else close() means RST
            ctx_.log.info(peer, " refused: server full (", max_clients_, " clients)");
            ctx_.explain.closing(fd.get());
            continue;  // Fd closes it
        }

        // Step 8b: register it once; from now on epoll_wait() names it only
        // when it is ready.  docs/02-multiclient.md#epoll
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = static_cast<std::uint64_t>(next_id_);
        if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd.get(), &ev) < 0) {
            ctx_.log.info(peer, " refused: epoll_ctl: ", std::generic_category().message(errno));
            continue;  // Fd closes it
        }
        const chat::ClientId id = next_id_++;
        Connection& c = clients_.try_emplace(id, id, std::move(fd), peer).first->second;
        if (full) {  // never joins the Room: no guest number is spent on it
            c.refused = true;
            ++refusing_;
            c.nick = "not joined";
            c.queue(chat::server_full(), Clock::now());
            c.flush_listed = true;
            to_flush_.push_back(id);
            c.leaving = true;
            leaving_.insert(id);
            c.close_by = Clock::now() + kCloseTimeout;
            c.close_reason = "refused: server full";
            ctx_.log.info(peer, " refused: server full (", max_clients_, " clients)");
            continue;
        }
        apply(room_.join(id));
        c.nick = room_.nick(id);
        ctx_.log.info(peer, " connected as ", c.nick);
    }
}

// Step 9a: the client sent bytes, or EOF, or its connection failed.
void Server::on_readable(Connection& c) {
    std::array<char, kReadSize> buffer;
    const IoResult r = c.read_some(buffer);
    switch (r.status) {
        case IoResult::would_block:  // EAGAIN, EINTR: nothing after all
            return;
        case IoResult::error:  // ECONNRESET, ETIMEDOUT ...
            drop(c, chat::LostReason::error, std::generic_category().message(r.error_code));
            return;
        case IoResult::eof:
            ctx_.explain.received(c.fd(), 0);
            c.peer_eof = true;
            if (!c.leaving) {
                c.close_reason = "closed by client";
                apply(room_.end_of_input(c.id()));
            }
            progress_close(c, Clock::now());
            return;
        case IoResult::ok:
            ctx_.explain.received(c.fd(), r.bytes);
            // A leaving client's input is read and thrown away: closing a
            // socket with unread input makes the kernel send RST, which can
            // destroy our last lines to it.  docs/02-multiclient.md#closing-politely
            if (!c.leaving) {
                apply(room_.receive(c.id(), std::string_view(buffer.data(), r.bytes)));
                if (room_.contains(c.id())) c.nick = room_.nick(c.id());  // after /nick
            }
            return;
    }
}

// Step 9b: the client can take more of its queue.
void Server::on_writable(Connection& c) {
    const IoResult r = c.write_some();
    if (r.status == IoResult::error) {  // EPIPE, ECONNRESET
        drop(c, chat::LostReason::error, std::generic_category().message(r.error_code));
        return;
    }
    if (r.status == IoResult::ok) {
        ctx_.explain.sent(c.fd(), r.bytes);
        sent_since_trim_ += r.bytes;
    }
    progress_close(c, Clock::now());
}

// A leaving client: once its queue is empty, send FIN and wait (briefly)
// for the peer's FIN, then close.  docs/02-multiclient.md#closing-politely
void Server::progress_close(Connection& c, Clock::time_point now) {
    if (!c.leaving || c.dead) return;
    if (now >= c.close_by) {
        mark_dead(c);
        if (c.close_reason.empty()) c.close_reason = "did not finish closing in time";
        return;
    }
    if (c.unsent() > 0) return;
    if (c.peer_eof || stopping_) {
        mark_dead(c);
        return;
    }
    if (!c.write_shut) {
        // docs/01-echo.md#shutdown
        if (::shutdown(c.fd(), SHUT_WR) == 0) ctx_.explain.shutdown_write(c.fd());
        c.write_shut = true;
    }
}

// Carry out what the Room decided: queue lines, mark clients to close.
void Server::apply(chat::Effects effects) {
    const auto now = Clock::now();
    chat::Effects e = std::move(effects);
    std::vector<chat::Effects> work;  // still to do: "left (too slow)" notices
    while (true) {
        for (chat::Delivery& d : e.deliveries) {
            Connection* c = find(d.to);
            if (c == nullptr || c->dead) continue;
            c->queue(std::move(d.data), now);
            if (!c->flush_listed) {
                c->flush_listed = true;
                to_flush_.push_back(c->id());
            }
            if (c->unsent() > kPauseReading) behind_.insert(c->id());
            // The slow-reader rule: never more than 1 MiB queued for anyone.
            // docs/02-multiclient.md#the-slow-reader
            if (c->unsent() > chat::kMaxUnsent) {
                mark_dead(*c);
                c->close_reason = "too slow: more than 1 MiB unsent";
                work.push_back(room_.lost(c->id(), chat::LostReason::too_slow));
            }
        }
        for (chat::ClientId id : e.closes) {
            Connection* c = find(id);
            if (c == nullptr || c->leaving) continue;
            c->leaving = true;
            leaving_.insert(id);
            c->close_by = Clock::now() + kCloseTimeout;
            if (c->close_reason.empty()) c->close_reason = "left";
        }
        for (const std::string& line : e.log)
            ctx_.log.info(line);
        if (work.empty()) return;
        e = std::move(work.back());
        work.pop_back();
    }
}

// The connection failed: tell the others, close it at the end of the pass.
void Server::drop(Connection& c, chat::LostReason why, const std::string& reason) {
    mark_dead(c);
    c.close_reason = reason;
    apply(room_.lost(c.id(), why));
}

// Close it at the end of this pass (sweep() visits only these).
void Server::mark_dead(Connection& c) {
    if (c.dead) return;
    c.dead = true;
    dead_.push_back(c.id());
}

// Close every connection marked dead.  docs/01-echo.md#close
void Server::sweep() {
    while (!dead_.empty()) {
        for (chat::ClientId id : std::exchange(dead_, {})) {
            Connection* c = find(id);
            if (c == nullptr) continue;
            if (room_.contains(id)) apply(room_.lost(id, chat::LostReason::error));
            if (!c->peer_eof) discard_input(c->fd());
            ctx_.explain.closing(c->fd());
            ctx_.log.info(c->peer(), " (", c->nick, ") closed: ", c->close_reason);
            leaving_.erase(id);
            if (c->refused) --refusing_;
            clients_.erase(id);  // ~Connection closes it; epoll forgets it then
        }
    }
}

Connection* Server::find(chat::ClientId id) {
    auto it = clients_.find(id);
    return it == clients_.end() ? nullptr : &it->second;
}

// Step 10: SIGINT/SIGTERM. Stop accepting, say goodbye, flush for at most
// 2 s, close everything.  docs/02-multiclient.md#shutting-down
void Server::shut_down() {
    stopping_ = true;
    ctx_.log.info("shutting down, ", clients_.size(), " client(s) connected");
    ctx_.explain.closing(listener_.get());
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, listener_.get(), nullptr);
    listener_.reset();  // new connection attempts are refused from now on
    apply(room_.shutdown());
    const auto deadline = Clock::now() + kShutdownFlush;
    for (auto& [id, c] : clients_) {
        if (!c.leaving) {
            c.leaving = true;
            c.close_reason = "server shutting down";
        }
        leaving_.insert(id);
        c.close_by = std::min(c.close_by == Clock::time_point{} ? deadline : c.close_by, deadline);
    }
    flush_output();
    std::array<epoll_event, kMaxEvents> events;
    while (!clients_.empty()) {
        const int ready = wait_for_events(events, deadline);
        for (int i = 0; i < ready; ++i) {
            if (events[i].data.u64 == kSignalsKey)
                ctx_.signals.drain();
            else if (events[i].data.u64 != kListenerKey)
                handle(events[i]);
        }
        flush_output();
        sweep();
    }
}

// Every client is a descriptor: raise the soft limit on open files to the
// hard one (often 1024 -> 1048576), and say so when even that is too low.
// docs/02-multiclient.md#epoll
void raise_descriptor_limit(common::Logger& log, long max_clients) {
    rlimit limit{};
    common::check(::getrlimit(RLIMIT_NOFILE, &limit), "getrlimit", "RLIMIT_NOFILE");
    if (limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        common::check(::setrlimit(RLIMIT_NOFILE, &limit), "setrlimit", "RLIMIT_NOFILE");
    }
    if (limit.rlim_cur != RLIM_INFINITY && static_cast<long>(limit.rlim_cur) < max_clients + 16)
        log.info("note: RLIMIT_NOFILE is ", limit.rlim_cur, ", so fewer than --max-clients ",
                 max_clients, " clients fit");
}

int run(const common::ServerOptions& opts, long max_clients, common::Logger& log) {
    if (!opts.log_file.empty()) log.open_file(opts.log_file);
    common::Explain explain(opts.explain);
    common::Signals signals;  // SIGINT/SIGTERM stop us, SIGHUP reopens the log
    Context ctx{log, explain, signals};
    raise_descriptor_limit(log, max_clients);

    common::Fd listener = open_listener(opts, ctx);
    const std::string where = common::local_address(listener.get());
    // The epoll instance exists before we say "listening on" (and survives
    // --daemon's fork: the child inherits it with its interest list).
    Server server(ctx, std::move(listener), max_clients);
    common::Service service = common::start_service(opts, log, where);

    server.run();
    server.shut_down();
    log.info("shut down");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    long max_clients = 10000;
    const common::ExtraOption extras[] = {
        {"max-clients", "N",
         "clients served at once; more are told \"server full\" (default 10000)",
         [&](std::string_view text) {
             return common::parse_number(text, 1, kMaxClientsLimit, max_clients);
         }},
    };
    const common::ServerOptions opts = common::parse_server_options(argc, argv, "7002", extras);
    common::Logger log;  // stderr until --log-file or --daemon says otherwise
    try {
        return run(opts, max_clients, log);
    } catch (const std::exception& e) {
        log.fatal(e.what());  // e.g. "bind 0.0.0.0:7002: Address already in use"
        return 1;
    }
}
