// step2_multiclient/relay.cpp: what the select, epoll and TLS relays share
// (see relay.hpp).
#include "relay.hpp"

#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <deque>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "../common/error.hpp"
#include "../common/net.hpp"
#include "listener.hpp"

namespace relay {

namespace {
// How many finished handshakes the kernel may queue for us. Thousands of
// clients may connect at once; when the queue is full the kernel drops their
// SYNs and each waits a 1 s retransmission.  docs/01-echo.md#listen
constexpr int kBacklog = 1024;
}  // namespace

Options parse_options(int argc, char** argv, const char* port, long max_clients, long limit) {
    Options opts{.server = {}, .max_clients = max_clients};
    const std::string help = "clients served at once; more are told \"server full\" (default " +
                             std::to_string(max_clients) + ", at most " + std::to_string(limit) +
                             ")";
    const common::ExtraOption extras[] = {
        {"max-clients", "N", help.c_str(),
         [&](std::string_view text) {
             return common::parse_number(text, 1, limit, opts.max_clients);
         }},
    };
    opts.server = common::parse_server_options(argc, argv, port, extras);
    return opts;
}

timeval timeval_until(Clock::time_point t) {
    const auto left =
        std::max(std::chrono::duration_cast<std::chrono::microseconds>(t - Clock::now()), 0us);
    return {static_cast<time_t>(left.count() / 1000000),
            static_cast<suseconds_t>(left.count() % 1000000)};
}

int milliseconds_until(Clock::time_point t) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(t - Clock::now());
    return static_cast<int>(std::max<long>(left.count(), 0));
}

common::Fd open_listener(const common::ServerOptions& opts, Context& ctx) {
    return step2::open_listener(opts, ctx.explain, kBacklog, SOCK_NONBLOCK);  // listener.cpp
}

void require_below_fd_setsize(std::initializer_list<int> fds) {
    for (int fd : fds) {
        if (fd >= FD_SETSIZE) {
            throw std::runtime_error("select: descriptor " + std::to_string(fd) +
                                     " is not below FD_SETSIZE (" + std::to_string(FD_SETSIZE) +
                                     "); too many descriptors were open at start");
        }
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

void discard_input(int fd) {
    std::array<char, 16 * 1024> scratch;
    for (int i = 0; i < 16; ++i) {
        if (::recv(fd, scratch.data(), scratch.size(), MSG_DONTWAIT) <= 0) return;
    }
}

// --- Connection --------------------------------------------------------------

IoResult Connection::read_some(std::span<char> buffer) {
    const ssize_t got = ::recv(fd(), buffer.data(), buffer.size(), 0);  // docs/01-echo.md#recv
    if (got > 0) return {IoResult::ok, static_cast<std::size_t>(got)};
    if (got == 0) return {IoResult::eof};
    if (common::is_transient(errno)) return {IoResult::would_block};
    return {IoResult::error, 0, std::generic_category().message(errno)};
}

// Partial writes are normal: the rest stays queued until the socket is
// writable again.  docs/02-multiclient.md#partial-writes
IoResult Connection::write_some() {
    std::array<iovec, tuning::kGather> iov;
    msghdr msg{};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = gather(iov);
    // MSG_NOSIGNAL: a vanished peer gives EPIPE, not a fatal SIGPIPE.
    const ssize_t n = ::sendmsg(fd(), &msg, MSG_NOSIGNAL);  // docs/01-echo.md#send
    if (n < 0) {
        if (common::is_transient(errno)) return {IoResult::would_block};
        return {IoResult::error, 0, std::generic_category().message(errno)};
    }
    consume(static_cast<std::size_t>(n));
    return {IoResult::ok, static_cast<std::size_t>(n)};
}

IoResult Connection::shut_write() {
    if (::shutdown(fd(), SHUT_WR) < 0) return {IoResult::error};  // docs/01-echo.md#shutdown
    return {IoResult::ok};
}

void Connection::queue(chat::Chunk chunk) {
    unsent_ += chunk->size();
    if (queue_.capacity() == 0) queue_.reserve(tuning::kQueueReserve);
    queue_.push_back(std::move(chunk));
}

std::size_t Connection::gather(std::span<iovec> iov) const {
    std::size_t count = 0;
    for (std::size_t i = head_; i < queue_.size() && count < iov.size(); ++i, ++count) {
        const std::string& chunk = *queue_[i];
        const std::size_t skip = count == 0 ? front_offset_ : 0;
        iov[count] = {const_cast<char*>(chunk.data()) + skip, chunk.size() - skip};
    }
    return count;
}

void Connection::consume(std::size_t n) {
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

void Connection::stage(std::string& record, std::size_t max) {
    std::array<iovec, 64> iov;
    while (record.size() < max && unsent_ > 0) {  // many short lines make one record
        const std::size_t count = gather(iov);
        const std::size_t before = record.size();
        for (std::size_t i = 0; i < count && record.size() < max; ++i) {
            const std::size_t take = std::min(iov[i].iov_len, max - record.size());
            record.append(static_cast<const char*>(iov[i].iov_base), take);
        }
        consume(record.size() - before);
        staged_ += record.size() - before;
    }
}

// --- Relay: accepting ----------------------------------------------------------

Relay::Relay(Context& ctx, common::Fd listener, long max_clients, int accept_batch)
    : ctx_(ctx),
      listener_(std::move(listener)),
      max_clients_(max_clients),
      accept_batch_(accept_batch) {}

std::string Relay::local_address() const {
    return common::local_address(listener_.get());
}

void Relay::accept_clients() {
    for (int i = 0; i < accept_batch_; ++i) {  // a bounded batch, then serve the others again
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
                // queue and the listener stays readable, so the wait would
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

        // Server full? A client that is leaving no longer counts: it has left
        // the room and only waits for its last lines to go out. The newcomer
        // gets the error line and a polite close (FIN after the line, its
        // input read until its own FIN): closing at once, with its first
        // bytes unread, would send RST instead. A few at a time; beyond that
        // they are closed at once.
        // (Counted: every client not leaving, but for the refused ones still in
        // their TLS handshake in stage 3.)
        const bool full =
            static_cast<long>(clients_.size() - leaving_.size() - refused_waiting_) >= max_clients_;
        if (full && refusing_ >= kMaxRefusing) {
            refuse_at_once(std::move(fd), peer);
            continue;
        }
        const chat::ClientId id = next_id_;
        std::unique_ptr<Connection> c = make_connection(id, std::move(fd), peer);
        if (!c) continue;  // closed at once; no id spent
        ++next_id_;
        Connection& conn = *clients_.emplace(id, std::move(c)).first->second;
        conn.refused = full;
        if (full) {
            ++refusing_;
            ++refused_waiting_;  // until refuse() lets it go
        }
        admitted(conn);
    }
}

std::unique_ptr<Connection> Relay::make_connection(chat::ClientId id, common::Fd fd,
                                                   const std::string& peer) {
    return std::make_unique<Connection>(id, std::move(fd), peer);
}

void Relay::admitted(Connection& c) {
    if (c.refused) return refuse(c);  // never joins the Room: no guest number is spent on it
    join(c);
    ctx_.log.info(c.peer(), " connected as ", c.nick);
}

void Relay::join(Connection& c, std::string_view nick) {
    apply(room_.join(c.id(), nick));
    c.nick = room_.contains(c.id()) ? room_.nick(c.id()) : "refused: " + std::string(nick);
}

void Relay::refuse(Connection& c) {
    --refused_waiting_;
    c.nick = "not joined";
    c.queue(chat::server_full());
    if (!std::exchange(c.flush_listed, true)) to_flush_.push_back(c.id());
    leave(c, "refused: server full");
    ctx_.log.info(c.peer(), " refused: server full (", max_clients_, " clients)");
}

// Beyond kMaxRefusing: one short line, which fits in the empty send buffer
// (this send() does not block; if it fails there is nothing more to do), and
// close.
void Relay::refuse_at_once(common::Fd fd, const std::string& peer) {
    const chat::Chunk line = chat::server_full();
    const ssize_t n = ::send(fd.get(), line->data(), line->size(),
                             MSG_NOSIGNAL | MSG_DONTWAIT);  // docs/01-echo.md#send
    if (n > 0) ctx_.explain.sent(fd.get(), static_cast<std::size_t>(n));
    discard_input(fd.get());  // what it already sent: else close() means RST
    ctx_.log.info(peer, " refused: server full (", max_clients_, " clients)");
    ctx_.explain.closing(fd.get());
}  // fd closes it

// --- Relay: reading, writing ---------------------------------------------------

// Step 9a: the client sent bytes, or EOF, or its connection failed.
void Relay::on_readable(Connection& c, bool must_read) {
    std::array<char, kReadSize> buffer;
    std::size_t budget = kReadSize;  // per client per wake-up, the same for all
    do {
        // Flow control: read only while the room can take what this sender
        // may bring. Otherwise its bytes stay in the kernel, and TCP's window
        // slows the sender down: nothing is lost.
        // docs/02-multiclient.md#the-slow-reader
        if (c.chatting() && !must_read && !room_can_take(Clock::now())) {
            if (!c.read_paused) {
                c.read_paused = true;
                paused_.push_back(c.id());
                interest_changed(c);
            }
            return;
        }
        const IoResult r = c.read_some(std::span(buffer.data(), budget));
        switch (r.status) {
            case IoResult::would_block:  // EAGAIN, EINTR: nothing after all
                return;
            case IoResult::error:  // ECONNRESET, ETIMEDOUT ...
                drop(c, chat::LostReason::error, r.reason);
                return;
            case IoResult::eof:
                ctx_.explain.received(c.fd(), 0);
                c.peer_eof = true;
                if (!c.leaving) {
                    c.close_reason = "closed by client";
                    apply(room_.end_of_input(c.id()));
                }
                progress_close(c, Clock::now());
                interest_changed(c);
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
                budget -= r.bytes;
        }
    } while (budget > 0 && !c.dead && c.read_again());
}

// Step 9b: the client can take more of its queue.
void Relay::on_writable(Connection& c) {
    if (c.unsent() > 0 && !c.write_shut) {
        const IoResult r = c.write_some();
        if (r.status == IoResult::error) {  // EPIPE, ECONNRESET
            drop(c, chat::LostReason::error, r.reason);
            return;
        }
        if (r.status == IoResult::ok) {
            ctx_.explain.sent(c.fd(), r.bytes);
            trim_.sent(r.bytes);
            c.earn(r.bytes);  // draining earns it the right to hold the room back
        }
    }
    progress_close(c, Clock::now());
}

// A leaving client: once its queue is empty, send FIN and wait (briefly)
// for the peer's FIN, then close.  docs/02-multiclient.md#closing-politely
void Relay::progress_close(Connection& c, Clock::time_point now) {
    if (!c.leaving || c.dead) return;
    if (now >= c.close_by) {
        if (c.close_reason.empty()) c.close_reason = "did not finish closing in time";
        return mark_dead(c);
    }
    if (c.unsent() > 0) return;
    // Closing now, with its input unread, would send RST and could destroy
    // what we sent last; at shutdown too, until the deadline.
    if (c.peer_eof) return mark_dead(c);
    if (!c.write_shut) {
        const IoResult r = c.shut_write();
        if (r.status == IoResult::would_block) return;  // writable again: retry
        if (r.status == IoResult::error) return mark_dead(c);
        ctx_.explain.shutdown_write(c.fd());
        c.write_shut = true;
    }
}

// --- Relay: the Room's decisions -----------------------------------------------

// Carry out what the Room decided: queue lines, mark clients to close.
void Relay::apply(chat::Effects effects) {
    chat::Effects e = std::move(effects);
    std::vector<chat::Effects> work;  // still to do: "left (too slow)" notices
    while (true) {
        for (chat::Delivery& d : e.deliveries) {
            Connection* c = find(d.to);
            if (c == nullptr || c->dead) continue;
            c->queue(std::move(d.data));
            if (!std::exchange(c->flush_listed, true)) to_flush_.push_back(c->id());
            if (c->unsent() > kPauseReading && !c->behind) {
                c->behind = true;
                behind_.push_back(c->id());
            }
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
            if (c != nullptr && !c->leaving) leave(*c, "left");
        }
        for (const std::string& line : e.log)
            ctx_.log.info(line);
        if (work.empty()) return;
        e = std::move(work.back());
        work.pop_back();
    }
}

void Relay::flush_output() {
    while (!to_flush_.empty()) {
        for (chat::ClientId id : std::exchange(to_flush_, {})) {
            Connection* c = find(id);
            if (c == nullptr) continue;
            c->flush_listed = false;
            if (!c->dead && c->wants_write()) on_writable(*c);
            if (!c->dead) interest_changed(*c);
        }
    }
}

// It has left the Room (or never joined): flush, then close politely.
void Relay::leave(Connection& c, const char* reason) {
    c.leaving = true;
    c.close_by = Clock::now() + kCloseTimeout;
    if (c.close_reason.empty()) c.close_reason = reason;
    leaving_.insert(c.id());
    interest_changed(c);
}

// The connection failed: tell the others, close it at the end of the pass.
void Relay::drop(Connection& c, chat::LostReason why, const std::string& reason) {
    mark_dead(c);
    c.close_reason = reason;
    apply(room_.lost(c.id(), why));
}

void Relay::mark_dead(Connection& c) {
    if (c.dead) return;
    c.dead = true;
    dead_.push_back(c.id());
}

// Close every connection marked dead.  docs/01-echo.md#close
void Relay::sweep() {
    while (!dead_.empty()) {
        for (chat::ClientId id : std::exchange(dead_, {})) {
            auto it = clients_.find(id);
            if (it == clients_.end()) continue;
            Connection& c = *it->second;
            // After "* server shutting down" nobody is told anything more.
            if (!stopping_ && room_.contains(id)) apply(room_.lost(id, chat::LostReason::error));
            c.before_close();
            if (!c.peer_eof) discard_input(c.fd());
            ctx_.explain.closing(c.fd());
            ctx_.log.info(c.peer(), " (", c.nick, ") closed: ", c.close_reason);
            leaving_.erase(id);
            if (c.refused) --refusing_;
            if (c.refused && !c.leaving) --refused_waiting_;  // failed its handshake
            trim_.closed();
            clients_.erase(it);  // ~Connection closes the descriptor
        }
    }
}

Connection* Relay::find(chat::ClientId id) {
    auto it = clients_.find(id);
    return it == clients_.end() ? nullptr : it->second.get();
}

// --- Relay: flow control -------------------------------------------------------
// docs/02-multiclient.md#the-slow-reader

// Before each read: can the room take what one more read may bring?
bool Relay::room_can_take(Clock::time_point now) {
    if (behind_.empty()) return true;  // nobody is far behind: the usual case
    update_holds(now);
    return !holding_;
}

// Who holds the room back now, and bill them for the pause so far. A reader
// holds it while it is more than kPauseReading behind and has budget left;
// the time the room waited is shared among those it waited for. Bytes its
// socket takes refill a budget (Connection::earn), and so does the time the
// room ran (kHoldPerRun): a reader that trickles runs out, stops holding
// anyone, and its queue runs on to 1 MiB; a reader on a machine so busy that
// it drains slowly is not, because the room slows down with it.
void Relay::update_holds(Clock::time_point now) {
    const auto elapsed = now - holds_updated_;
    const auto waited = holding_ ? elapsed : Clock::duration{};
    if (!holding_) room_ran_ += elapsed;
    holds_updated_ = now;
    std::vector<Connection*> holders;
    std::erase_if(behind_, [&](chat::ClientId id) {
        Connection* c = find(id);
        if (c == nullptr) return true;
        if (c->dead || c->leaving || c->unsent() <= kPauseReading) {
            c->behind = false;
            return true;
        }
        c->earn_room_ran(room_ran_);
        if (c->hold_budget > Clock::duration{}) holders.push_back(c);
        return false;
    });
    // The bill is shared by weight: a reader that took little since the last
    // bill pays more of it than one that drained fast (a burst of honest
    // readers shares it evenly; a trickler among them pays nearly all).
    auto weight = [](const Connection* c) { return 1.0 / (1.0 + double(c->drained) / 16384.0); };
    double total = 0;
    for (const Connection* c : holders)
        total += weight(c);
    hold_ends_.reset();
    holding_ = false;
    for (Connection* c : holders) {
        const double share = weight(c) / total;
        c->drained = 0;
        c->hold_budget -= std::chrono::duration_cast<Clock::duration>(waited * share);
        if (c->hold_budget <= Clock::duration{}) continue;
        holding_ = true;
        const auto ends = now + std::chrono::duration_cast<Clock::duration>(c->hold_budget / share);
        if (!hold_ends_ || ends < *hold_ends_) hold_ends_ = ends;
    }
}

// --- Relay: between waits ------------------------------------------------------

std::optional<Clock::time_point> Relay::before_wait(std::optional<Clock::time_point> deadline) {
    const auto now = Clock::now();
    for (chat::ClientId id : leaving_) {
        if (Connection* c = find(id)) progress_close(*c, now);  // deadlines passed?
    }
    sweep();
    flush_output();  // "left" notices of those just closed
    if (accept_paused_until_ && now >= *accept_paused_until_) accept_paused_until_.reset();

    // Flow control: the clients left waiting in the kernel are read first,
    // in the order they had to wait, as soon as the room can take more; the
    // others only then, when the wait reports them. Else whoever comes first
    // in the scan (or in epoll's ready list) would take the room's headroom
    // every time, and the rest would starve.
    while (!paused_.empty() && room_can_take(now)) {
        Connection* c = find(paused_.front());
        paused_.pop_front();
        if (c == nullptr || c->dead) continue;
        c->read_paused = false;
        on_readable(*c);  // waits at the back again if the room fills up
        if (!c->dead && !c->read_paused) interest_changed(*c);
    }
    sweep();
    flush_output();

    // The earliest moment something must happen without any socket event.
    std::optional<Clock::time_point> wake_at = deadline;
    auto earliest = [&](std::optional<Clock::time_point> t) {
        if (t && (!wake_at || *t < *wake_at)) wake_at = t;
    };
    earliest(accept_paused_until_);
    for (chat::ClientId id : leaving_) {
        if (Connection* c = find(id)) earliest(c->close_by);
    }
    if (holding_) earliest(hold_ends_);
    earliest(trim_.run(now));
    return wake_at;
}

Clock::time_point Relay::begin_shutdown() {
    stopping_ = true;
    ctx_.log.info("shutting down, ", clients_.size(), " client(s) connected");
    ctx_.explain.closing(listener_.get());
    listener_.reset();  // new connection attempts are refused from now on
    apply(room_.shutdown());
    const auto deadline = Clock::now() + kShutdownFlush;
    for (auto& [id, c] : clients_) {
        if (!c->leaving && !c->chatting()) {  // not in the chat yet: nobody to tell
            c->close_reason = "server shutting down";
            mark_dead(*c);
            continue;
        }
        if (!c->leaving) leave(*c, "server shutting down");
        c->close_by = std::min(c->close_by, deadline);
    }
    return deadline;
}

}  // namespace relay
