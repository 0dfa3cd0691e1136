// step3_tls/server.cpp: the stage 2 chat relay over TLS.
//
// Read it beside docs/03-tls.md, and diff it against
// step2_multiclient/server.cpp: what changed is what TLS adds. Each client
// gets an SSL object on top of its socket, a handshake comes between accept()
// and the welcome, SSL_read/SSL_write stand where recv/send stood, and a
// polite close sends close_notify before FIN. The loop:
//
//     socket -> bind -> listen -> loop { select -> accept | SSL_accept | SSL_read | SSL_write } ->
//     close
//
// (Stage 2's description of the loop follows; all of it still holds.)
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
//
// Non-blocking TLS in short (docs/03-tls.md#non-blocking-tls-in-a-select-loop):
// every SSL_* call may answer "WANT_READ" or "WANT_WRITE": OpenSSL needs the
// socket to become readable (or writable) before it can go on, whatever the
// call was. We then wait in select() for exactly that and call it again, with
// the same arguments. And OpenSSL may hold decrypted bytes the socket no
// longer shows (SSL_pending), so a read drains those before select() again.

#include <malloc.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
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
#include "../common/text.hpp"
#include "../step2_multiclient/chat.hpp"
#include "tls.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// How many finished handshakes the kernel may queue for us. Hundreds of
// clients may connect at once; when the queue is full the kernel drops their
// SYNs and each waits a 1 s retransmission.  docs/01-echo.md#listen
constexpr int kBacklog = 1024;
// Descriptors the server needs besides its clients (stdio, listener, signal
// pipe, log file, a connection being refused) stay below FD_SETSIZE too.
constexpr long kMaxClientsLimit = FD_SETSIZE - 16;
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
// SIGINT/SIGTERM: flush for at most this long, then close everything.
constexpr auto kShutdownFlush = 2s;
// accept() failed for lack of descriptors: look at the listener again after this.
constexpr auto kAcceptPause = 100ms;
// One TLS record carries at most 16 KiB of data: we encrypt that much at most
// per SSL_write.
constexpr std::size_t kRecordSize = 16 * 1024;
// [docs:tls-refusing]
// Refused ("server full") clients still get a handshake; at most this many at
// once (they hold descriptors: with kMaxClientsLimit clients they still fit
// below FD_SETSIZE, next to stdio, the listener, the signal pipe and the log).
constexpr std::size_t kMaxRefusing = 4;
// [/docs]

// What --cert, --key, --ca, --require-client-cert, --handshake-timeout say.
struct TlsOptions {
    tls::ServerFiles files;
    std::chrono::seconds handshake_timeout{10};
};

// The objects every part of the server needs, owned by run().
struct Context {
    common::Logger& log;
    common::Explain& explain;
    common::Signals& signals;
};

// What one handshake()/read_some()/write_some() did.
struct IoResult {
    enum Status { ok, would_block, eof, error } status;
    std::size_t bytes = 0;
    std::string reason = {};  // why, for `error`
};

// One connected client: its descriptor and the TLS session on top of it,
// its bounded output queue, and where it is in its life. Its nick and input
// buffer live in the chat::Room, which knows it by `id`.
// docs/02-multiclient.md#one-object-per-client
class Connection {
  public:
    Connection(chat::ClientId id, common::Fd fd, std::string peer, tls::Session ssl)
        : id_(id), fd_(std::move(fd)), peer_(std::move(peer)), ssl_(std::move(ssl)) {}

    chat::ClientId id() const { return id_; }
    int fd() const { return fd_.get(); }
    const std::string& peer() const { return peer_; }
    SSL* ssl() const { return ssl_.get(); }

    // One more step of the server's side of the TLS handshake: ok when it is
    // complete, would_block when OpenSSL waits for the socket (to become
    // writable when wait_write is set, else readable).  docs/03-tls.md#ssl_accept
    IoResult handshake() {
        wait_write = false;
        const int rc = ::SSL_accept(ssl());
        if (rc == 1) return {IoResult::ok};
        return failed(rc);
    }

    // SSL_read() one record's worth: bytes, EOF (close_notify, or the peer's
    // FIN), "nothing yet", or an error.  docs/03-tls.md#ssl_read
    IoResult read_some(std::span<char> buffer) {
        wait_write = false;
        std::size_t got = 0;
        const int rc = ::SSL_read_ex(ssl(), buffer.data(), buffer.size(), &got);
        if (rc == 1) return {IoResult::ok, got};
        return failed(rc);
    }
    // Decrypted bytes OpenSSL holds that select() cannot see on the socket.
    // docs/03-tls.md#ssl_pending
    bool pending() const { return ::SSL_pending(ssl()) > 0; }

    // Send as much of the queue as the kernel takes now, one record (16 KiB)
    // per SSL_write. WANT_WRITE means the socket is full: the rest waits for
    // the next "writable". The next call must then pass the very same bytes
    // again, so they wait in record_ until SSL_write takes them.
    // docs/03-tls.md#ssl_write
    IoResult write_some() {
        std::size_t total = 0;
        while (unsent_ > 0) {
            wait_write = false;
            if (record_.empty()) fill_record();
            std::size_t n = 0;
            const int rc = ::SSL_write_ex(ssl(), record_.data(), record_.size(), &n);
            if (rc != 1) {
                const IoResult r = failed(rc);
                return r.status == IoResult::would_block && total > 0
                           ? IoResult{IoResult::ok, total}
                           : r;
            }
            unsent_ -= n;
            record_.clear();
            total += n;
        }
        // All sent: an idle client keeps no 16 KiB buffer (SSL_MODE_RELEASE_BUFFERS
        // does the same for OpenSSL's own), and no queue sized for its busiest moment.
        std::string().swap(record_);
        std::vector<chat::Chunk>().swap(queue_);
        head_ = 0;
        return {IoResult::ok, total};
    }

    // The TLS half-close: close_notify, then FIN. would_block: call again
    // when writable.  docs/03-tls.md#close_notify
    IoResult close_notify() {
        wait_write = false;
        const int rc = ::SSL_shutdown(ssl());  // 0: sent; 1: the peer's came too
        if (rc < 0) return failed(rc);
        ::shutdown(fd(), SHUT_WR);  // docs/01-echo.md#shutdown
        return {IoResult::ok};
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
    bool wants_write() const { return (unsent_ > 0 && !write_shut) || wait_write; }

    // Where the connection is in its life.
    bool handshaking = true;        // until SSL_accept succeeds
    bool refused = false;           // server full: handshake, "* error: server full", close
    bool leaving = false;           // the Room let it go: flush, then close
    bool peer_eof = false;          // close_notify or FIN arrived
    bool write_shut = false;        // close_notify sent
    bool dead = false;              // close it at the end of this pass
    bool fatal = false;             // a TLS error: the session must not be used again
    bool wait_write = false;        // OpenSSL's last call wants the socket writable
    bool read_wants_write = false;  // ... and that call was SSL_read
    std::string close_reason;
    std::string nick;                  // for log lines, kept after the Room has let it go
    Clock::time_point close_by{};      // a leaving client's deadline
    Clock::time_point handshake_by{};  // --handshake-timeout after accept
    Clock::time_point behind_since{};  // when its queue last passed kPauseReading

    // Is it far behind, but recently enough that the others should wait for it?
    bool holds_back_senders(Clock::time_point now) const {
        return !leaving && unsent_ > kPauseReading && now - behind_since < kMaxStall;
    }

  private:
    // [docs:failed]
    // Why an SSL_* call returned rc <= 0, from SSL_get_error().
    IoResult failed(int rc) {
        switch (const int err = ::SSL_get_error(ssl(), rc)) {
            case SSL_ERROR_WANT_READ:  // waits for bytes from the peer
                return {IoResult::would_block};
            case SSL_ERROR_WANT_WRITE:  // waits for room in the send buffer
                wait_write = true;
                return {IoResult::would_block};
            case SSL_ERROR_ZERO_RETURN:  // close_notify, or (IGNORE_UNEXPECTED_EOF) FIN
                return {IoResult::eof};
            default:  // SSL_ERROR_SSL, SSL_ERROR_SYSCALL: the session is dead
                fatal = true;
                return {IoResult::error, 0, tls::failure_reason(ssl(), err)};
        }
    }
    // [/docs]

    // Move up to one record of queued bytes into record_.
    void fill_record() {
        while (head_ < queue_.size() && record_.size() < kRecordSize) {
            const std::string& chunk = *queue_[head_];
            const std::size_t take =
                std::min(chunk.size() - front_offset_, kRecordSize - record_.size());
            record_.append(chunk, front_offset_, take);
            front_offset_ += take;
            if (front_offset_ == chunk.size()) {
                queue_[head_++].reset();  // this client's share of the line
                front_offset_ = 0;
            }
        }
    }

    chat::ClientId id_;
    common::Fd fd_;
    std::string peer_;
    tls::Session ssl_;                // freed before fd_ is closed (declared after it)
    std::vector<chat::Chunk> queue_;  // shared lines, each sent once to this client
    std::size_t head_ = 0;            // queue_[head_] is the next to send
    std::size_t front_offset_ = 0;    // bytes of queue_[head_] already in record_
    std::string record_;              // handed to SSL_write, kept until it succeeds
    std::size_t unsent_ = 0;          // bytes queued or in record_, not yet sent
};

class Server {
  public:
    Server(Context& ctx, common::Fd listener, long max_clients, TlsOptions tls_options,
           tls::Context tls_context)
        : ctx_(ctx),
          listener_(std::move(listener)),
          max_clients_(max_clients),
          tls_options_(std::move(tls_options)),
          tls_(std::move(tls_context)) {}

    // Steps 5-9, until SIGINT or SIGTERM.
    void run();
    // Step 10: tell everyone, flush for at most 2 s, close everything.
    void shut_down();

  private:
    void wait_for_events(fd_set& readable, fd_set& writable, int& ready,
                         std::optional<Clock::time_point> deadline);
    void accept_clients();
    void on_handshake(Connection& c);
    void reload_certificate();
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
    TlsOptions tls_options_;
    tls::Context tls_;  // settings, certificate and key for new connections
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

        // Step 7: a signal? SIGINT/SIGTERM end the loop, SIGHUP reopens the
        // log and reloads the certificate and key.
        if (FD_ISSET(ctx_.signals.fd(), &readable)) {
            ctx_.signals.drain();
            if (ctx_.signals.take_reload_request()) {
                ctx_.log.reopen();
                reload_certificate();
            }
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

// SIGHUP: new connections get the certificate and key now in the files;
// connections already open keep the SSL_CTX they started with (each SSL holds
// a reference to it). Broken files change nothing.  docs/03-tls.md#reloading-the-certificate
void Server::reload_certificate() {
    try {
        tls::Context fresh = tls::make_server_context(tls_options_.files);
        tls::narrate(fresh.get(), ctx_.explain);
        tls_ = std::move(fresh);
        ctx_.log.info("reloaded certificate ", tls_options_.files.cert, " and key ",
                      tls_options_.files.key);
    } catch (const tls::Error& e) {
        ctx_.log.info("SIGHUP: keeping the old certificate: ", e.what());
    }
}

// Steps 5-6: build the descriptor sets and call select().
void Server::wait_for_events(fd_set& readable, fd_set& writable, int& ready,
                             std::optional<Clock::time_point> deadline) {
    const auto now = Clock::now();
    for (auto& [id, c] : clients_) {
        progress_close(c, now);  // deadlines passed?
        if (c.handshaking && now >= c.handshake_by && !c.dead) {
            c.dead = true;  // a stalled handshake costs only its own connection
            c.close_reason = "TLS handshake timed out";
        }
    }
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
        // client's input is only thrown away, so it is read regardless; a
        // handshake is not chat input, so it goes on too).
        if (!c.peer_eof && (c.leaving || c.handshaking || !throttled)) FD_SET(c.fd(), &readable);
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
        if (c.handshaking) earliest(c.handshake_by);
    }
    // A burst (1000 clients joining: a million "joined" lines, and what
    // each handshake allocated and freed) leaves the heap full of freed
    // memory that malloc keeps; hand it back to the kernel a second after
    // the last one, so idle clients cost little.
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
    for (int i = 0; i < 256; ++i) {  // a bounded batch, then serve the others again
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
        // Clients in their handshake count too: each holds a descriptor and
        // an SSL. A refused client still gets its handshake, so that it can
        // read "* error: server full" (a plaintext line would only confuse
        // its TLS stack); a few at a time, the rest are closed at once.
        const auto refusing = static_cast<std::size_t>(std::count_if(
            clients_.begin(), clients_.end(), [](const auto& e) { return e.second.refused; }));
        const bool full = static_cast<long>(clients_.size() - refusing) >= max_clients_;
        if (full && refusing >= kMaxRefusing) {
            ctx_.log.info(peer, " refused: server full (", max_clients_, " clients)");
            ctx_.explain.closing(fd.get());
            continue;  // Fd closes it
        }

        // [docs:ssl-new]
        // A TLS session on top of the socket: SSL_new copies the settings
        // of the current SSL_CTX, SSL_set_fd lets it use our descriptor, and
        // SSL_set_accept_state makes it the server side. Nothing is sent yet:
        // the client speaks first (ClientHello).  docs/03-tls.md#ssl_accept
        tls::Session ssl(::SSL_new(tls_.get()));
        if (!ssl || ::SSL_set_fd(ssl.get(), fd.get()) != 1) {
            ctx_.log.info(peer, " refused: SSL_new: ", tls::take_errors());
            continue;
        }
        ::SSL_set_accept_state(ssl.get());
        // [/docs]

        const chat::ClientId id = next_id_++;
        Connection& c =
            clients_.try_emplace(id, id, std::move(fd), peer, std::move(ssl)).first->second;
        c.refused = full;
        c.handshake_by = Clock::now() + tls_options_.handshake_timeout;
        c.nick = "not joined";  // until the handshake is done
        ctx_.explain.note("a TLS session (SSL) now sits on fd " + std::to_string(c.fd()) +
                              "; the client speaks first: we wait for its ClientHello",
                          "03-tls.md#ssl_accept");
    }
}

// [docs:on-handshake]
// Step 8b: the handshake went one step further. The welcome (and the guest
// number) waits until it is complete: a client that fails it never joins.
void Server::on_handshake(Connection& c) {
    const IoResult r = c.handshake();
    if (r.status == IoResult::would_block) return;  // select() will tell us when to go on
    if (r.status != IoResult::ok) {                 // wrong version, bad certificate, plaintext ...
        c.dead = true;
        c.close_reason = r.status == IoResult::eof ? "closed during TLS handshake"
                                                   : "TLS handshake failed: " + r.reason;
        return;
    }
    c.handshaking = false;
    ctx_.explain.tls_established(c.fd(), ::SSL_get_version(c.ssl()),
                                 ::SSL_get_cipher_name(c.ssl()));
    if (c.refused) {
        c.queue(chat::server_full(), Clock::now());
        c.leaving = true;
        c.close_by = Clock::now() + kCloseTimeout;
        c.close_reason = "refused: server full";
        ctx_.log.info(c.peer(), " refused: server full (", max_clients_, " clients)");
        return;
    }
    // Mutual TLS: the verified certificate's CN is the nick (the Room checks
    // it like a /nick; control bytes are escaped before they reach a line).
    std::string nick;
    if (tls_options_.files.require_client_cert) {
        nick = common::escape_controls(tls::common_name(::SSL_get0_peer_certificate(c.ssl())));
        if (nick.empty()) nick = "(no CN)";  // not a valid nick: refused by the Room
    }
    apply(room_.join(c.id(), nick));
    c.nick = room_.contains(c.id()) ? room_.nick(c.id()) : "refused: " + nick;
    ctx_.log.info(c.peer(), " connected as ", c.nick, ", ", ::SSL_get_version(c.ssl()), " ",
                  ::SSL_get_cipher_name(c.ssl()));
}
// [/docs]

// Step 9a: the client sent bytes, or EOF, or its connection failed.
void Server::on_readable(Connection& c) {
    if (c.handshaking) return on_handshake(c);
    std::array<char, kReadSize> buffer;
    const IoResult r = c.read_some(buffer);
    switch (r.status) {
        case IoResult::would_block:  // WANT_READ: a record is incomplete; WANT_WRITE: on_writable
            c.read_wants_write = c.wait_write;
            return;
        case IoResult::error:  // a reset, a corrupt or forged record ...
            drop(c, chat::LostReason::error, r.reason);
            return;
        case IoResult::eof:  // close_notify (or a bare FIN): the client sends no more
            ctx_.explain.note("SSL_read -> end of stream on fd " + std::to_string(c.fd()) +
                                  ": flush what is queued for it, then close",
                              "03-tls.md#close_notify");
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
            // [docs:pending]
            // OpenSSL may still hold decrypted bytes of this record, which
            // select() cannot see: take them now.  docs/03-tls.md#ssl_pending
            if (!c.dead && c.pending()) on_readable(c);
            // [/docs]
            return;
    }
}

// Step 9b: the client can take more of its queue.
void Server::on_writable(Connection& c) {
    if (c.handshaking) return on_handshake(c);                     // it waited to send its flight
    if (std::exchange(c.read_wants_write, false)) on_readable(c);  // SSL_read must send first
    if (c.dead || c.unsent() == 0) return progress_close(c, Clock::now());
    const IoResult r = c.write_some();
    if (r.status == IoResult::error) {  // EPIPE, ECONNRESET
        drop(c, chat::LostReason::error, r.reason);
        return;
    }
    if (r.status == IoResult::ok) {
        ctx_.explain.sent(c.fd(), r.bytes);
        sent_since_trim_ += r.bytes;
    }
    if (c.wait_write && ctx_.explain.enabled()) {
        ctx_.explain.note("SSL_write on fd " + std::to_string(c.fd()) +
                              ": WANT_WRITE, the send buffer is full; the same record waits "
                              "and is passed again when select() says writable",
                          "03-tls.md#ssl_write");
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
    if (!c.write_shut && !c.fatal) {
        // close_notify, then FIN.  docs/03-tls.md#close_notify
        const IoResult r = c.close_notify();
        if (r.status == IoResult::would_block) return;  // writable again: retry
        if (r.status == IoResult::error) {
            c.dead = true;
            return;
        }
        ctx_.explain.shutdown_write(c.fd());
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

// Close every connection marked dead.  docs/01-echo.md#close
void Server::sweep() {
    for (auto it = clients_.begin(); it != clients_.end();) {
        Connection& c = it->second;
        if (!c.dead) {
            ++it;
            continue;
        }
        if (room_.contains(c.id())) apply(room_.lost(c.id(), chat::LostReason::error));
        // A last close_notify if none went out yet (never after a TLS error,
        // nor before the handshake finished); best effort, it does not wait.
        if (!c.handshaking && !c.fatal && !c.write_shut) c.close_notify();
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
        if (c.handshaking) c.dead = true;  // not in the chat yet: nobody to tell
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

int run(const common::ServerOptions& opts, long max_clients, const TlsOptions& tls_opts,
        common::Logger& log) {
    if (!opts.log_file.empty()) log.open_file(opts.log_file);
    common::Explain explain(opts.explain);
    common::Signals signals;  // SIGINT/SIGTERM stop us, SIGHUP reopens the log, reloads the cert
    Context ctx{log, explain, signals};

    // The certificate and its private key, read now: before start_service()
    // drops privileges (--user), since the key is readable by root only.
    // (Without root, --user fails anyway: say that, not "key: Permission denied".)
    // docs/03-tls.md#the-server-context
    common::check_user_option(opts);
    tls::Context tls_context = tls::make_server_context(tls_opts.files);
    tls::narrate(tls_context.get(), explain);  // --explain: name each TLS message

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

    Server server(ctx, std::move(listener), max_clients, tls_opts, std::move(tls_context));
    server.run();
    server.shut_down();
    log.info("shut down");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    long max_clients = 1000;
    TlsOptions tls_opts;
    // Defaults next to the binary: step3_tls/certs/ (see make-certs.sh).
    tls_opts.files.cert = tls::default_cert_path("server.crt");
    tls_opts.files.key = tls::default_cert_path("server.key");
    auto path = [](std::string& out) {
        return [&out](std::string_view text) -> std::string {
            out = text;
            return text.empty() ? "empty path" : "";
        };
    };
    const common::ExtraOption extras[] = {
        {"max-clients", "N",
         "clients at once, TLS handshakes included (default 1000, at most 1008)",
         [&](std::string_view text) {
             return common::parse_number(text, 1, kMaxClientsLimit, max_clients);
         }},
        {"cert", "PATH", "certificate chain, PEM (default step3_tls/certs/server.crt)",
         path(tls_opts.files.cert)},
        {"key", "PATH", "its private key, PEM (default step3_tls/certs/server.key)",
         path(tls_opts.files.key)},
        {"ca", "PATH", "CA that signs client certificates (for --require-client-cert)",
         path(tls_opts.files.ca)},
        {"require-client-cert", nullptr,
         "mutual TLS: clients need a certificate; its CN is the nick",
         [&](std::string_view) -> std::string {
             tls_opts.files.require_client_cert = true;
             return "";
         }},
        {"handshake-timeout", "N", "drop a client whose TLS handshake takes over N s (default 10)",
         [&](std::string_view text) {
             long seconds = 0;
             std::string err = common::parse_number(text, 1, 3600, seconds);
             tls_opts.handshake_timeout = std::chrono::seconds(seconds);
             return err;
         }},
    };
    const common::ServerOptions opts = common::parse_server_options(argc, argv, "7003", extras);
    // SIGHUP reads the files again, maybe after --daemon's chdir("/"): make
    // the paths absolute now.
    for (std::string* file : {&tls_opts.files.cert, &tls_opts.files.key, &tls_opts.files.ca}) {
        if (!file->empty()) *file = std::filesystem::absolute(*file).string();
    }
    if (tls_opts.files.require_client_cert && tls_opts.files.ca.empty()) {
        std::fprintf(
            stderr,
            "%s: --require-client-cert needs --ca PATH (the CA that signs client certificates)\n",
            argc > 0 ? argv[0] : "server");
        return 2;
    }
    common::Logger log;  // stderr until --log-file or --daemon says otherwise
    try {
        return run(opts, max_clients, tls_opts, log);
    } catch (const std::exception& e) {
        // e.g. "bind 0.0.0.0:7003: Address already in use", or
        // "certificate step3_tls/certs/server.crt: No such file or directory (run `make certs`
        // ...)"
        log.fatal(e.what());
        return 1;
    }
}
