// step3_tls/server.cpp: the stage 2 chat relay over TLS.
//
// Read it beside docs/03-tls.md, and diff it against
// step2_multiclient/server.cpp: what changed is what TLS adds. The loop:
//
//     socket -> bind -> listen -> loop { select -> accept | SSL_accept | SSL_read | SSL_write }
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
// Every SSL_* call may answer WANT_READ or WANT_WRITE: we wait in select()
// for exactly that, then call it again with the same arguments.
// docs/03-tls.md#non-blocking-tls-in-a-select-loop

#include <openssl/ssl.h>
#include <sys/select.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <exception>
#include <optional>
#include <string>
#include <utility>

#include "../common/daemon.hpp"
#include "../common/error.hpp"
#include "../common/explain.hpp"
#include "../common/fd.hpp"
#include "../common/log.hpp"
#include "../common/net.hpp"
#include "../common/options.hpp"
#include "../common/signals.hpp"
#include "../common/text.hpp"
#include "../step2_multiclient/relay.hpp"
#include "server_options.hpp"
#include "tls.hpp"

namespace {

using relay::Clock;
using relay::IoResult;

// Descriptors the server needs besides its clients (stdio, listener, signal
// pipe, log file, the few connections being refused) stay below FD_SETSIZE too.
constexpr long kMaxClientsLimit = FD_SETSIZE - 16;
// One TLS record carries at most 16 KiB of data: we encrypt that much at most
// per SSL_write.
constexpr std::size_t kRecordSize = 16 * 1024;

// Stage 2's Connection with a TLS session on top of its socket: the same
// queue and life, SSL_read/SSL_write where recv/sendmsg were, and a handshake
// first.  docs/02-multiclient.md#one-object-per-client
class Connection : public relay::Connection {
  public:
    Connection(chat::ClientId id, common::Fd fd, std::string peer, tls::Session ssl)
        : relay::Connection(id, std::move(fd), std::move(peer)), ssl_(std::move(ssl)) {}
    SSL* ssl() const { return ssl_.get(); }

    // SSL_read() one record's worth: bytes, EOF (close_notify, or the peer's
    // FIN), "nothing yet", or an error.  docs/03-tls.md#ssl_read
    IoResult read_some(std::span<char> buffer) override {
        // [lesson:ssl-read]
        wait_write = false;
        std::size_t got = 0;
        const int rc = ::SSL_read_ex(ssl(), buffer.data(), buffer.size(), &got);
        if (rc == 1) return {IoResult::ok, got};
        const IoResult r = failed(rc);
        read_wants_write = wait_write;  // WANT_WRITE: on_writable calls it again
        return r;
        // [/lesson]
    }
    // Records keep coming until WANT_READ: read them all, within the budget
    // of one wake-up (relay.cpp), so many small records never starve a client.
    bool read_again() const override { return true; }
    bool pending() const { return ::SSL_pending(ssl()) > 0; }  // docs/03-tls.md#ssl_pending

    // Send as much of the queue as the kernel takes now, one record (16 KiB)
    // per SSL_write. After WANT_WRITE the next call must pass the very same
    // bytes again, so they wait in record_ until SSL_write takes them.
    // docs/03-tls.md#ssl_write
    IoResult write_some() override {
        // [lesson:ssl-write]
        std::size_t total = 0;
        while (unsent() > 0) {
            wait_write = false;
            if (record_.empty()) stage(record_, kRecordSize);
            std::size_t n = 0;
            const int rc = ::SSL_write_ex(ssl(), record_.data(), record_.size(), &n);
            if (rc != 1) {
                const IoResult r = failed(rc);
                return r.status == IoResult::would_block && total > 0
                           ? IoResult{IoResult::ok, total}
                           : r;
            }
            record_.clear();
            unstage();
            total += n;
        }
        std::string().swap(record_);  // an idle client keeps no 16 KiB buffer
        return {IoResult::ok, total};
        // [/lesson]
    }

    // The TLS half-close: close_notify, then FIN. would_block: call again
    // when writable.  docs/03-tls.md#close_notify
    IoResult shut_write() override {
        // [lesson:close-notify]
        wait_write = false;
        if (fatal) return {IoResult::error};   // a broken session sends nothing more
        const int rc = ::SSL_shutdown(ssl());  // 0: sent; 1: the peer's came too
        if (rc < 0) return failed(rc);
        ::shutdown(fd(), SHUT_WR);  // docs/01-echo.md#shutdown
        return {IoResult::ok};
        // [/lesson]
    }
    bool chatting() const override { return !leaving && !handshaking; }
    bool wants_write() const override { return relay::Connection::wants_write() || wait_write; }
    // A last close_notify if none went out yet (never after a TLS error, nor
    // before the handshake finished); best effort, it does not wait.
    void before_close() override {
        if (!handshaking && !fatal && !write_shut) shut_write();
    }

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

    bool handshaking = true;           // until SSL_accept succeeds
    bool fatal = false;                // a TLS error: the session must not be used again
    bool wait_write = false;           // OpenSSL's last call wants the socket writable
    bool read_wants_write = false;     // ... and that call was SSL_read
    Clock::time_point handshake_by{};  // --handshake-timeout after accept

  private:
    tls::Session ssl_;    // freed before the base class closes the descriptor
    std::string record_;  // handed to SSL_write, kept until it succeeds
};

Connection& tls_of(relay::Connection& c) {
    return static_cast<Connection&>(c);
}

class Server : public relay::Relay {
  public:
    // `tls` holds the certificate and its private key, read by main() before
    // the port is bound and before start_service() drops privileges (--user):
    // the key is readable by root only.  docs/03-tls.md#the-server-context
    Server(relay::Context& ctx, common::Fd listener, long max_clients, TlsOptions tls_options,
           tls::Context tls)
        : Relay(ctx, std::move(listener), max_clients, tuning::kAcceptBatch),
          tls_options_(std::move(tls_options)),
          tls_(std::move(tls)) {
        tls::narrate(tls_.get(), ctx_.explain);  // --explain: name each TLS message
    }

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
    void admitted(relay::Connection& c) override;
    void on_handshake(Connection& c);
    void on_readable(relay::Connection& c, bool must_read = false) override;
    void on_writable(relay::Connection& c) override;
    void reload_certificate();

    TlsOptions tls_options_;
    tls::Context tls_;  // settings, certificate and key for new connections
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

// Steps 7-9: every descriptor that is ready. Nothing here waits: a socket
// that has nothing (more) gives EAGAIN.
void Server::serve_ready(fd_set& readable, fd_set& writable) {
    // Step 7: a signal? SIGINT/SIGTERM end the loop, SIGHUP reopens the log
    // (and here reloads the certificate and key).
    if (FD_ISSET(ctx_.signals.fd(), &readable)) {
        ctx_.signals.drain();
        if (ctx_.signals.take_reload_request()) {
            ctx_.log.reopen();
            reload_certificate();
        }
    }
    // Step 8: new connections waiting in the accept queue (relay.cpp:
    // accept4, the server-full rule).  docs/01-echo.md#accept
    if (accepting() && FD_ISSET(listener_.get(), &readable)) accept_clients();
    // Step 9: every client that is ready: read, then write.
    each_client([&](relay::Connection& c) {
        // [docs:pending]
        // OpenSSL may hold decrypted bytes that select() cannot see on the
        // socket (a wake-up's read budget ended inside them): take them now.
        // docs/03-tls.md#ssl_pending
        const bool held = wants_read(c) && tls_of(c).pending();
        // [/docs]
        if (!c.dead && (FD_ISSET(c.fd(), &readable) || held)) on_readable(c);
        if (!c.dead && FD_ISSET(c.fd(), &writable)) on_writable(c);
    });
    flush_output();  // the lines this pass produced: send them now
    sweep();
}

// Steps 5-6: build the descriptor sets and call select().
int Server::wait_for_events(fd_set& readable, fd_set& writable,
                            std::optional<Clock::time_point> deadline) {
    // Deadlines, flow control: when must select() return at the latest?
    std::optional<Clock::time_point> wake_at = before_wait(deadline);
    for (auto& [id, c] : clients_) {
        Connection& t = tls_of(*c);
        if (wants_read(t) && t.pending()) wake_at = Clock::now();  // records held: go on at once
        // [lesson:handshake-deadline]
        if (!t.handshaking || t.dead) continue;  // a stalled handshake costs only its connection:
        if (Clock::now() >= t.handshake_by) drop(t, {}, "TLS handshake timed out");
        if (!wake_at || t.handshake_by < *wake_at) wake_at = t.handshake_by;
        // [/lesson]
    }
    sweep();

    // Step 5: which descriptors we care about, and for what. select()
    // overwrites the sets, so they are rebuilt before every call.
    // docs/02-multiclient.md#select
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
        // A handshake is not chat: it goes on regardless.
        if (wants_read(*c)) FD_SET(c->fd(), &readable);
        // Writability only while something is queued: an idle socket is
        // almost always writable, and asking would wake us for nothing.
        // Or while OpenSSL waits to send (WANT_WRITE).
        if (c->wants_write()) FD_SET(c->fd(), &writable);
        max_fd = std::max(max_fd, c->fd());
    }
    timeval timeout = relay::timeval_until(wake_at.value_or(Clock::time_point{}));

    // Step 6: sleep until one of them is ready. select() returns how many
    // are; the sets now hold only the ready ones.  docs/02-multiclient.md#select
    const int ready =
        ::select(max_fd + 1, &readable, &writable, nullptr, wake_at ? &timeout : nullptr);
    if (ready < 0) {
        if (errno == EINTR) return -1;  // a signal: the self-pipe says which
        common::throw_errno("select");
    }
    ctx_.explain.selected(ready, &readable, &writable, max_fd);
    return ready;
}

// Step 8, after accept(): FD_SET on a descriptor >= FD_SETSIZE writes past
// the end of the fd_set: never let one reach it.  docs/02-multiclient.md#fd_setsize
std::unique_ptr<relay::Connection> Server::make_connection(chat::ClientId id, common::Fd fd,
                                                           const std::string& peer) {
    if (fd.get() >= FD_SETSIZE) {
        ctx_.log.info(peer, " refused: descriptor ", fd.get(), " >= FD_SETSIZE");
        ctx_.explain.closing(fd.get());
        return nullptr;  // Fd closes it
    }
    // [docs:ssl-new]
    // A TLS session on top of the socket: SSL_new copies the settings
    // of the current SSL_CTX, SSL_set_fd lets it use our descriptor, and
    // SSL_set_accept_state makes it the server side. Nothing is sent yet:
    // the client speaks first (ClientHello).  docs/03-tls.md#ssl_accept
    tls::Session ssl(::SSL_new(tls_.get()));
    if (!ssl || ::SSL_set_fd(ssl.get(), fd.get()) != 1) {
        ctx_.log.info(peer, " refused: SSL_new: ", tls::take_errors());
        return nullptr;
    }
    ::SSL_set_accept_state(ssl.get());
    // [/docs]
    return std::make_unique<Connection>(id, std::move(fd), peer, std::move(ssl));
}

// Clients in their handshake count as connected: each holds a descriptor and
// an SSL. A refused client still gets its handshake, so that it can read
// "* error: server full" (a plaintext line would only confuse its TLS stack).
void Server::admitted(relay::Connection& base) {
    Connection& c = tls_of(base);
    c.handshake_by = Clock::now() + tls_options_.handshake_timeout;
    c.nick = "not joined";  // until the handshake is done
    ctx_.explain.note("a TLS session (SSL) now sits on fd " + std::to_string(c.fd()) +
                          "; the client speaks first: we wait for its ClientHello",
                      "03-tls.md#ssl_accept");
}

// [docs:on-handshake]
// Step 8b: the handshake went one step further. The welcome (and the guest
// number) waits until it is complete: a client that fails it never joins.
void Server::on_handshake(Connection& c) {
    // One more step of the server's side of the TLS handshake: ok when it is
    // complete, would_block when OpenSSL waits for the socket (to become
    // writable when wait_write is set, else readable).  docs/03-tls.md#ssl_accept
    // [lesson:ssl-accept]
    c.wait_write = false;
    const int rc = ::SSL_accept(c.ssl());
    const IoResult r = rc == 1 ? IoResult{IoResult::ok} : c.failed(rc);
    if (r.status == IoResult::would_block) return;  // select() will tell us when to go on
    if (r.status != IoResult::ok) {                 // wrong version, bad certificate, plaintext ...
        c.close_reason = r.status == IoResult::eof ? "closed during TLS handshake"
                                                   : "TLS handshake failed: " + r.reason;
        return mark_dead(c);
    }
    // [/lesson]
    c.handshaking = false;
    ctx_.explain.tls_established(c.fd(), ::SSL_get_version(c.ssl()),
                                 ::SSL_get_cipher_name(c.ssl()));
    if (c.refused) return refuse(c);
    // Mutual TLS: the verified certificate's CN is the nick (the Room checks
    // it like a /nick; control bytes are escaped before they reach a line).
    std::string nick;
    if (tls_options_.files.require_client_cert) {
        nick = common::escape_controls(tls::common_name(::SSL_get0_peer_certificate(c.ssl())));
        if (nick.empty()) nick = "(no CN)";  // not a valid nick: refused by the Room
    }
    join(c, nick);
    ctx_.log.info(c.peer(), " connected as ", c.nick, ", ", ::SSL_get_version(c.ssl()), " ",
                  ::SSL_get_cipher_name(c.ssl()));
}
// [/docs]

// Step 9a: the handshake, or records (relay.cpp reads them, SSL_read).
void Server::on_readable(relay::Connection& c, bool must_read) {
    if (tls_of(c).handshaking) return on_handshake(tls_of(c));
    Relay::on_readable(c, must_read);
}

// Step 9b: the client can take more of its queue.
void Server::on_writable(relay::Connection& base) {
    Connection& c = tls_of(base);
    if (c.handshaking) return on_handshake(c);                     // it waited to send its flight
    if (std::exchange(c.read_wants_write, false)) on_readable(c);  // SSL_read must send first
    if (c.dead) return;
    Relay::on_writable(c);
    if (c.wait_write && ctx_.explain.enabled()) {
        ctx_.explain.note("SSL_write on fd " + std::to_string(c.fd()) +
                              ": WANT_WRITE, the send buffer is full; the same record waits "
                              "and is passed again when select() says writable",
                          "03-tls.md#ssl_write");
    }
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
    long max_clients = 1000;
    TlsOptions tls_opts;  // --cert, --key, --ca ... (server_options.cpp)
    const common::ServerOptions opts =
        parse_tls_server_options(argc, argv, kMaxClientsLimit, max_clients, tls_opts);
    // relay.hpp: the log, the signal pipe, --daemon, run(), then shut_down().
    return relay::serve(opts, [&](relay::Context& ctx) {
        // Without root --user fails anyway: say that, not "key: Permission denied".
        common::check_user_option(opts);
        // The certificate and key first: a missing or mismatched file is the
        // error a user sees, even when the port is taken.
        tls::Context tls = tls::make_server_context(tls_opts.files);
        // Steps 1-4, as in stage 1 (listener.cpp).  docs/01-echo.md#socket
        common::Fd listener = relay::open_listener(opts, ctx);
        // select() can watch only descriptors below FD_SETSIZE; a process started
        // with a thousand descriptors already open cannot use it at all.
        // docs/02-multiclient.md#fd_setsize
        relay::require_below_fd_setsize({listener.get(), ctx.signals.fd()});
        return Server(ctx, std::move(listener), max_clients, tls_opts, std::move(tls));
    });
}
