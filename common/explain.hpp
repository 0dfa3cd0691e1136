// explain.hpp: --explain narrates each socket call and what TCP does then.
//
// Narration is a call placed next to the call it explains:
//     int fd = ::accept4(...);          // docs/01-echo.md#accept
//     explain.accepted(listener, fd, peer);
// When --explain is off every method returns at once: nothing is computed
// and nothing is printed. Lines go to stderr and start with "explain: ".
//
// Each line ends with the docs section that explains it, e.g.
// [docs/01-echo.md#listen]. A connection's first send() and recv() are
// explained in full; later ones get one short line each, so a long session
// stays readable. A TCP_INFO snapshot (the kernel's own view of the
// connection: state, MSS, RTT, windows ...) follows each accept/connect and
// precedes each close; docs/tcp-on-the-wire.md#tcp_info explains its fields.
#pragma once

#include <poll.h>
#include <sys/select.h>
#include <sys/types.h>

#include <cstddef>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>

namespace common {

class Explain {
  public:
    explicit Explain(bool enabled) : enabled_(enabled) {}
    bool enabled() const { return enabled_; }

    void socket(int fd, int family);
    void setsockopt(int fd, std::string_view option);
    void bind(int fd, std::string_view address);
    void listen(int fd, int backlog);
    void accepted(int listen_fd, int fd, std::string_view peer);
    void connected(int fd, std::string_view peer);
    void sent(int fd, std::size_t bytes);
    void received(int fd, std::size_t bytes);  // 0 bytes = the peer's FIN
    void shutdown_write(int fd);
    void closing(int fd);                         // call before close()
    void woke(std::string_view call, int ready);  // select()/poll() returned
    // poll() returned `ready`: names each ready descriptor and what it is
    // ready for (a listening socket's queued handshake, data or FIN, room to send).
    void polled(std::span<const pollfd> fds, int ready);
    // select() returned `ready`; the sets as select() left them (either may be null).
    void selected(int ready, const fd_set* readable, const fd_set* writable, int max_fd);
    // Call in both processes after fork(): the parent with the child's pid,
    // the child with 0. The child's lines are then tagged with its pid.
    void forked(pid_t child);

    // TLS (stage 3), without OpenSSL types. From OpenSSL's info callback:
    //   if (where & SSL_CB_LOOP)  explain.tls_state(SSL_state_string_long(ssl));
    //   if (where & SSL_CB_ALERT) explain.tls_alert(where & SSL_CB_WRITE,
    //                                               SSL_alert_desc_string_long(ret));
    // tls_state() turns "SSLv3/TLS write client hello" into "sent ClientHello".
    void tls_state(std::string_view openssl_state);
    // The same when the caller already knows the message's name ("ClientHello",
    // "ServerHello", "Certificate", "Finished", "close_notify" ...).
    void tls_message(bool sent, std::string_view message);
    void tls_alert(bool sent, std::string_view description);  // "close notify" = close_notify
    // After SSL_accept/SSL_connect succeeded: SSL_get_version(), SSL_get_cipher_name().
    void tls_established(int fd, std::string_view version, std::string_view cipher);

    // Anything else worth a line: `text` then the docs link.
    void note(std::string_view text, std::string_view docs_anchor);

    // One line: "explain: <text> [docs/<anchor>]" (`docs_anchor` may already
    // start with "docs/"; an empty anchor prints no link).
    void line(std::string_view text, std::string_view docs_anchor);

  private:
    void snapshot(int fd, std::string_view when);  // TCP_INFO in words
    std::string describe_fd(int fd, bool readable, bool writable, short trouble) const;

    bool enabled_;
    std::string tag_;                              // "[pid N] " in a forked child
    std::map<int, unsigned> sends_;                // per descriptor: how many send()s so far
    std::map<int, unsigned> receives_;             // and recv()s, to explain only the first in full
    unsigned wakeups_ = 0;                         // poll()/select() wake-ups so far
    std::set<std::string, std::less<>> tls_seen_;  // TLS messages explained in full once
};

}  // namespace common
