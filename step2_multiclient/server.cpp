// step2_multiclient/server.cpp: the chat relay: one process, select().
//
// Read it beside docs/02-multiclient.md. One process sees every client's
// socket, so it can pass a line from one client to all the others. The loop:
//
//     socket -> bind -> listen -> loop { select -> accept | recv | send } -> close
//
// select() tells us which sockets are ready; the sockets are non-blocking, so
// recv() and send() never wait for one client while the others wait for us.
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
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <exception>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
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

// How many finished handshakes the kernel may queue for us. Hundreds of
// clients may connect at once; when the queue is full the kernel drops their
// SYNs and each waits a 1 s retransmission.  docs/01-echo.md#listen
constexpr int kBacklog = 1024;
// Descriptors the server needs besides its clients (stdio, listener, signal
// pipe, log file, the few connections being refused) stay below FD_SETSIZE too.
constexpr long kMaxClientsLimit = FD_SETSIZE - 16;
// At most this many connections are accepted per wake-up. Each join is
// announced to everyone, so each accept adds a line to every client's queue;
// sending them before the next batch keeps those queues short, and the
// queues freed between batches leave fewer holes in the heap around the
// clients' long-lived objects. 1000 clients joining, memory per idle client
// and the time until all were welcomed: 256 per batch 2-4 KB; 32: about
// 1000 bytes, 0.09 s; 8: 786 bytes, 0.17-0.21 s (docs/benchmarks.md).
constexpr int kAcceptBatch = 8;
// [docs:relay-limits]
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
// Refused ("server full") clients are closed politely too; at most this many
// at once (they hold descriptors: this fits in the FD_SETSIZE budget above).
constexpr std::size_t kMaxRefusing = 4;
// A leaving client gets this long to take its last lines and close.
constexpr auto kCloseTimeout = 2s;
// SIGINT/SIGTERM: flush for at most this long, then close everything.
constexpr auto kShutdownFlush = 2s;
// accept() failed for lack of descriptors: look at the listener again after this.
constexpr auto kAcceptPause = 100ms;
// [/docs]

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
    // rest stays queued for the next time select() says "writable".
    // docs/02-multiclient.md#partial-writes
    IoResult write_some() {
        std::array<iovec, 64> iov;
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
    Server(Context& ctx, common::Fd listener, long max_clients)
        : ctx_(ctx), listener_(std::move(listener)), max_clients_(max_clients) {}

    // Steps 5-9, until SIGINT or SIGTERM.
    void run();
    // Step 10: tell everyone, flush for at most 2 s, close everything.
    void shut_down();

  private:
    void wait_for_events(fd_set& readable, fd_set& writable, int& ready,
                         std::optional<Clock::time_point> deadline);
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
    long max_clients_;
    chat::Room room_;
    std::map<chat::ClientId, Connection> clients_;
    chat::ClientId next_id_ = 1;
    bool stopping_ = false;
    std::optional<Clock::time_point> accept_paused_until_;
    std::size_t sent_since_trim_ = 0;  // bytes, for malloc_trim()
    Clock::time_point last_trim_{};
    bool out_of_descriptors_ = false;  // the last accept() failed with EMFILE
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

void Server::run() {
    while (!ctx_.signals.stop_requested()) {
        // Steps 5-6: wait until a socket is ready or a signal arrives.
        fd_set readable, writable;
        int ready = 0;
        wait_for_events(readable, writable, ready, std::nullopt);
        if (ready <= 0) continue;  // a timeout or EINTR: look at the clock and flags again

        // Step 7: a signal? SIGINT/SIGTERM end the loop, SIGHUP reopens the log.
        if (FD_ISSET(ctx_.signals.fd(), &readable)) {
            ctx_.signals.drain();
            if (ctx_.signals.take_reload_request()) ctx_.log.reopen();
        }
        // Step 8: new connections waiting in the accept queue.
        if (FD_ISSET(listener_.get(), &readable)) accept_clients();

        // Step 9: every client that is ready: read, then write. Nothing here
        // waits: a socket that has nothing (more) gives EAGAIN.
        for (auto& [id, c] : clients_) {
            if (!c.dead && FD_ISSET(c.fd(), &readable)) on_readable(c);
            if (!c.dead && FD_ISSET(c.fd(), &writable)) on_writable(c);
        }
        sweep();
    }
}

// Steps 5-6: build the descriptor sets and call select().
void Server::wait_for_events(fd_set& readable, fd_set& writable, int& ready,
                             std::optional<Clock::time_point> deadline) {
    const auto now = Clock::now();
    for (auto& [id, c] : clients_)
        progress_close(c, now);  // deadlines passed?
    sweep();
    if (accept_paused_until_ && now >= *accept_paused_until_) accept_paused_until_.reset();

    // Step 5: which descriptors we care about, and for what. select()
    // overwrites the sets, so they are rebuilt before every call.
    // docs/02-multiclient.md#select
    FD_ZERO(&readable);
    FD_ZERO(&writable);
    // Backpressure: is some reader far behind? Then read from nobody.
    const bool throttled = std::any_of(clients_.begin(), clients_.end(), [&](const auto& entry) {
        return entry.second.holds_back_senders(now);
    });
    int max_fd = ctx_.signals.fd();
    FD_SET(ctx_.signals.fd(), &readable);
    if (listener_ && !accept_paused_until_) {
        FD_SET(listener_.get(), &readable);
        max_fd = std::max(max_fd, listener_.get());
    }
    for (auto& [id, c] : clients_) {
        // Every descriptor here is below FD_SETSIZE: accept_clients() made sure.
        // Read unless it sent EOF, or a reader is far behind (a leaving
        // client's input is only thrown away, so it is read regardless).
        if (!c.peer_eof && (c.leaving || !throttled)) FD_SET(c.fd(), &readable);
        // Writability only while something is queued: an idle socket is
        // almost always writable, and asking would wake us for nothing.
        if (c.wants_write()) FD_SET(c.fd(), &writable);
        max_fd = std::max(max_fd, c.fd());
    }

    // The earliest moment something must happen without any socket event.
    std::optional<Clock::time_point> wake_at = deadline;
    auto earliest = [&](Clock::time_point t) {
        if (!wake_at || t < *wake_at) wake_at = t;
    };
    if (accept_paused_until_) earliest(*accept_paused_until_);
    for (auto& [id, c] : clients_) {
        if (c.leaving) earliest(c.close_by);
        if (c.holds_back_senders(now)) earliest(c.behind_since + kMaxStall);
    }
    // A burst (1000 clients joining: a million "joined" lines) leaves the
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
    timeval timeout{};
    if (wake_at) {
        const auto left =
            std::max(std::chrono::duration_cast<std::chrono::microseconds>(*wake_at - Clock::now()),
                     std::chrono::microseconds(0));
        timeout.tv_sec = static_cast<time_t>(left.count() / 1000000);
        timeout.tv_usec = static_cast<suseconds_t>(left.count() % 1000000);
    }

    // Step 6: sleep until one of them is ready. select() returns how many
    // are; the sets now hold only the ready ones.  docs/02-multiclient.md#select
    ready = ::select(max_fd + 1, &readable, &writable, nullptr, wake_at ? &timeout : nullptr);
    if (ready < 0) {
        if (errno == EINTR) return;  // a signal: the self-pipe says which
        common::throw_errno("select");
    }
    ctx_.explain.selected(ready, &readable, &writable, max_fd);
}

// Step 8: take every waiting connection off the accept queue.
void Server::accept_clients() {
    for (int i = 0; i < kAcceptBatch; ++i) {  // a bounded batch, then serve the others again
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
                // queue and the listener stays readable, so select() would
                // return at once, forever: stop watching the listener for a
                // moment instead of spinning.  docs/02-multiclient.md#emfile
                if (!out_of_descriptors_) {  // one log line per episode, not ten a second
                    ctx_.log.info("accept: ", std::generic_category().message(errno),
                                  "; pausing accept for ", kAcceptPause.count(), " ms at a time");
                }
                out_of_descriptors_ = true;
                accept_paused_until_ = Clock::now() + kAcceptPause;
                return;
            }
            ctx_.log.info("accept: ", std::generic_category().message(errno));
            return;
        }
        out_of_descriptors_ = false;
        const std::string peer =
            common::format_address(reinterpret_cast<sockaddr*>(&peer_addr), peer_len);
        ctx_.explain.accepted(listener_.get(), fd.get(), peer);

        // FD_SET on a descriptor >= FD_SETSIZE writes past the end of the
        // fd_set: never let one reach it.  docs/02-multiclient.md#fd_setsize
        if (fd.get() >= FD_SETSIZE) {
            ctx_.log.info(peer, " refused: descriptor ", fd.get(), " >= FD_SETSIZE");
            ctx_.explain.closing(fd.get());
            continue;  // Fd closes it
        }
        // Server full: the newcomer gets the error line and a polite close
        // (FIN after the line, its input read until its own FIN): closing
        // at once, with its first bytes unread, would send RST instead.
        // A few at a time; beyond that they are closed at once.
        const auto refusing = static_cast<std::size_t>(std::count_if(
            clients_.begin(), clients_.end(), [](const auto& e) { return e.second.refused; }));
        const bool full = static_cast<long>(clients_.size() - refusing) >= max_clients_;
        if (full && refusing >= kMaxRefusing) {
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

        const chat::ClientId id = next_id_++;
        Connection& c = clients_.try_emplace(id, id, std::move(fd), peer).first->second;
        if (full) {  // never joins the Room: no guest number is spent on it
            c.refused = true;
            c.nick = "not joined";
            c.queue(chat::server_full(), Clock::now());
            c.leaving = true;
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
        c.dead = true;
        if (c.close_reason.empty()) c.close_reason = "did not finish closing in time";
        return;
    }
    if (c.unsent() > 0) return;
    if (c.peer_eof || stopping_) {
        c.dead = true;
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
            // The slow-reader rule: never more than 1 MiB queued for anyone.
            // docs/02-multiclient.md#the-slow-reader
            if (c->unsent() > chat::kMaxUnsent) {
                c->dead = true;
                c->close_reason = "too slow: more than 1 MiB unsent";
                work.push_back(room_.lost(c->id(), chat::LostReason::too_slow));
            }
        }
        for (chat::ClientId id : e.closes) {
            Connection* c = find(id);
            if (c == nullptr || c->leaving) continue;
            c->leaving = true;
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
    c.dead = true;
    c.close_reason = reason;
    apply(room_.lost(c.id(), why));
}

// Close every connection marked dead.  docs/01-echo.md#close
void Server::sweep() {
    for (auto it = clients_.begin(); it != clients_.end();) {
        Connection& c = it->second;
        if (!c.dead) {
            ++it;
            continue;
        }
        if (room_.contains(c.id())) apply(room_.lost(c.id(), chat::LostReason::error));
        if (!c.peer_eof) discard_input(c.fd());
        ctx_.explain.closing(c.fd());
        ctx_.log.info(c.peer(), " (", c.nick, ") closed: ", c.close_reason);
        it = clients_.erase(it);  // ~Connection closes the descriptor
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
    listener_.reset();  // new connection attempts are refused from now on
    apply(room_.shutdown());
    const auto deadline = Clock::now() + kShutdownFlush;
    for (auto& [id, c] : clients_) {
        if (!c.leaving) {
            c.leaving = true;
            c.close_reason = "server shutting down";
        }
        c.close_by = std::min(c.close_by == Clock::time_point{} ? deadline : c.close_by, deadline);
    }
    while (!clients_.empty()) {
        fd_set readable, writable;
        int ready = 0;
        wait_for_events(readable, writable, ready, deadline);
        if (ready <= 0) continue;
        if (FD_ISSET(ctx_.signals.fd(), &readable)) ctx_.signals.drain();
        for (auto& [id, c] : clients_) {
            if (!c.dead && FD_ISSET(c.fd(), &readable)) on_readable(c);
            if (!c.dead && FD_ISSET(c.fd(), &writable)) on_writable(c);
        }
        sweep();
    }
}

int run(const common::ServerOptions& opts, long max_clients, common::Logger& log) {
    if (!opts.log_file.empty()) log.open_file(opts.log_file);
    common::Explain explain(opts.explain);
    common::Signals signals;  // SIGINT/SIGTERM stop us, SIGHUP reopens the log
    Context ctx{log, explain, signals};

    common::Fd listener = open_listener(opts, ctx);
    // select() can watch only descriptors below FD_SETSIZE; a process started
    // with a thousand descriptors already open cannot use it at all.
    // docs/02-multiclient.md#fd_setsize
    for (int fd : {listener.get(), signals.fd()}) {
        if (fd >= FD_SETSIZE) {
            throw std::runtime_error("select: descriptor " + std::to_string(fd) +
                                     " is not below FD_SETSIZE (" + std::to_string(FD_SETSIZE) +
                                     "); too many descriptors were open at start");
        }
    }
    common::Service service =
        common::start_service(opts, log, common::local_address(listener.get()));

    Server server(ctx, std::move(listener), max_clients);
    server.run();
    server.shut_down();
    log.info("shut down");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    long max_clients = 1000;
    const common::ExtraOption extras[] = {
        {"max-clients", "N",
         "clients served at once; more are told \"server full\" (default 1000, at most 1008)",
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
