#include "explain.hpp"

// <linux/tcp.h>, not <netinet/tcp.h>: only the kernel's own struct tcp_info
// has the newer fields (bytes acked and received, the peer's window).
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <iomanip>
#include <sstream>

namespace common {
namespace {

// From the kernel's tcp_states.h (TCP_TIME_WAIT, TCP_CLOSE, TCP_CLOSE_WAIT, TCP_LISTEN).
constexpr unsigned kTimeWaitState = 6;
constexpr unsigned kCloseState = 7;
constexpr unsigned kCloseWaitState = 8;
constexpr unsigned kListenState = 10;

const char* tcp_state_name(unsigned state) {
    static const char* const names[] = {"?",          "ESTABLISHED", "SYN_SENT",  "SYN_RECV",
                                        "FIN_WAIT1",  "FIN_WAIT2",   "TIME_WAIT", "CLOSE",
                                        "CLOSE_WAIT", "LAST_ACK",    "LISTEN",    "CLOSING"};
    return state < sizeof names / sizeof names[0] ? names[state] : "?";
}

// Did the kernel fill in `field`? Older kernels return a shorter struct.
#define HAS_FIELD(len, field) \
    ((len) >= offsetof(tcp_info, field) + sizeof(static_cast<tcp_info*>(nullptr)->field))

// Microseconds as milliseconds with three decimals: 46 -> "0.046 ms".
std::string millis(unsigned micros) {
    std::ostringstream s;
    s << micros / 1000 << '.' << std::setw(3) << std::setfill('0') << micros % 1000 << " ms";
    return s.str();
}

// The TLS handshake messages, by the words OpenSSL's state strings use
// ("SSLv3/TLS write client hello"), longest match first.
struct TlsMessage {
    std::string_view openssl_words;
    std::string_view name;
    std::string_view meaning;
};
constexpr TlsMessage kTlsMessages[] = {
    {"client hello", "ClientHello",
     "the client's offer, sent in the clear: TLS versions, cipher suites, a key share and the "
     "server name it wants (SNI)"},
    {"server hello", "ServerHello",
     "the server's choice of version and cipher, and its key share; with TLS 1.3 everything "
     "after this message is encrypted"},
    {"encrypted extensions", "EncryptedExtensions",
     "the rest of the server's answers to the client's extensions, already encrypted"},
    {"certificate request", "CertificateRequest",
     "the server asks the client for a certificate (mutual TLS)"},
    {"certificate verify", "CertificateVerify",
     "a signature over the handshake so far, made with the certificate's private key: proof "
     "that the sender owns the certificate"},
    {"certificate", "Certificate",
     "a certificate chain; the receiver checks it against its CA file and the host name"},
    {"server done", "ServerHelloDone", "TLS 1.2: the server has nothing more to say for now"},
    {"key exchange", "KeyExchange", "TLS 1.2: key material for the shared secret"},
    {"change cipher spec", "ChangeCipherSpec",
     "a compatibility record; from here the sender encrypts (TLS 1.3 ignores it otherwise)"},
    {"finished", "Finished",
     "a MAC over every handshake message: both sides saw the same handshake, nobody tampered"},
    {"session ticket", "NewSessionTicket",
     "a ticket the client may present later to resume without a full handshake"},
    {"key update", "KeyUpdate", "new traffic keys from here on"},
};

}  // namespace

void Explain::line(std::string_view text, std::string_view docs_anchor) {
    if (!enabled_) return;
    std::string out = "explain: ";
    out.append(tag_).append(text);
    if (!docs_anchor.empty()) {
        out.append(" [");
        if (docs_anchor.substr(0, 5) != "docs/") out.append("docs/");
        out.append(docs_anchor).append("]");
    }
    out += '\n';
    // One write() per line, so lines of several processes do not mix.
    [[maybe_unused]] ssize_t ignored = ::write(STDERR_FILENO, out.data(), out.size());
}

void Explain::note(std::string_view text, std::string_view docs_anchor) {
    line(text, docs_anchor);
}

void Explain::socket(int fd, int family) {
    if (!enabled_) return;
    std::ostringstream s;
    s << "socket(" << (family == AF_INET6 ? "AF_INET6" : "AF_INET") << ", SOCK_STREAM) -> fd " << fd
      << ". The kernel allocated a socket: control information (state CLOSED, no "
      << "addresses yet) and send/receive buffers. Nothing is sent on the wire.";
    line(s.str(), "docs/01-echo.md#socket");
}

void Explain::setsockopt(int fd, std::string_view option) {
    if (!enabled_) return;
    std::ostringstream s;
    s << "setsockopt(fd " << fd << ", " << option << "). Only the socket's control information "
      << "changes; nothing is sent.";
    line(s.str(), "docs/01-echo.md#setsockopt");
}

void Explain::bind(int fd, std::string_view address) {
    if (!enabled_) return;
    std::ostringstream s;
    s << "bind(fd " << fd << ", " << address << "). The socket now owns this local address and "
      << "port; no packet is sent.";
    line(s.str(), "docs/01-echo.md#bind");
}

void Explain::listen(int fd, int backlog) {
    if (!enabled_) return;
    std::ostringstream s;
    s << "listen(fd " << fd << ", backlog " << backlog << ") -> LISTEN. From now on the kernel "
      << "answers each SYN with SYN+ACK by itself and queues finished handshakes until accept() "
      << "takes them.";
    line(s.str(), "docs/01-echo.md#listen");
}

void Explain::accepted(int listen_fd, int fd, std::string_view peer) {
    if (!enabled_) return;
    std::ostringstream s;
    s << "accept(fd " << listen_fd << ") -> fd " << fd << " for " << peer
      << ". The 3-way handshake (SYN, SYN+ACK, ACK) had already finished in the kernel; accept() "
      << "took the new connection off the accept queue. No packet is sent.";
    line(s.str(), "docs/01-echo.md#accept");
    snapshot(fd, "after accept");
}

void Explain::connected(int fd, std::string_view peer) {
    if (!enabled_) return;
    std::ostringstream s;
    s << "connect(fd " << fd << ", " << peer << ") returned: our SYN was answered by SYN+ACK and "
      << "our ACK is on its way; the connection is ESTABLISHED.";
    line(s.str(), "docs/01-echo.md#connect");
    snapshot(fd, "after connect");
}

void Explain::sent(int fd, std::size_t bytes) {
    if (!enabled_) return;
    std::ostringstream s;
    if (sends_[fd]++ == 0) {
        s << "send(fd " << fd << ", " << bytes << " bytes) -> copied into the kernel's send "
          << "buffer. TCP cuts it into segments of at most MSS bytes, each with a sequence "
          << "number, and keeps a copy until the peer ACKs it. (Later sends on this connection: "
          << "one short line each.)";
        line(s.str(), "docs/01-echo.md#send");
    } else {
        s << "send(fd " << fd << ", " << bytes << " bytes)";
        line(s.str(), "");
    }
}

void Explain::received(int fd, std::size_t bytes) {
    if (!enabled_) return;
    std::ostringstream s;
    if (bytes == 0) {
        // Which side closed first decides the state; TCP_INFO tells us.
        tcp_info info{};
        socklen_t len = sizeof info;
        const bool known = ::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0;
        const unsigned state = known ? info.tcpi_state : 0;
        s << "recv(fd " << fd << ") -> 0: the peer sent FIN (it will send no more). Our kernel "
          << "ACKed it; ";
        if (state == kCloseWaitState) {
            s << "the socket is in CLOSE_WAIT until we close our side.";
        } else if (state == kCloseState || state == kTimeWaitState) {
            s << "we had sent our FIN first and it was ACKed, so both directions are finished: "
              << "the socket reads state " << tcp_state_name(state)
              << ", and the connection waits out TIME_WAIT (60 s) in a kernel entry of its own.";
        } else if (known) {
            s << "we had sent our FIN first; the socket is in " << tcp_state_name(state) << ".";
        } else {
            s << "the socket is in CLOSE_WAIT until we close our side (or TIME_WAIT if we had "
              << "sent our FIN first).";
        }
        line(s.str(), "docs/01-echo.md#recv");
    } else if (receives_[fd]++ == 0) {
        s << "recv(fd " << fd << ") -> " << bytes << " bytes, copied out of the receive buffer. "
          << "The kernel already ACKed them (ACK number = last byte received + 1); reading "
          << "frees buffer space, which reopens the window it advertises. (Later receives on "
          << "this connection: one short line each.)";
        line(s.str(), "docs/01-echo.md#recv");
    } else {
        s << "recv(fd " << fd << ") -> " << bytes << " bytes";
        line(s.str(), "");
    }
}

void Explain::shutdown_write(int fd) {
    if (!enabled_) return;
    std::ostringstream s;
    s << "shutdown(fd " << fd << ", SHUT_WR): after the queued data the kernel sends FIN "
      << "(state FIN_WAIT1, then FIN_WAIT2 once it is ACKed). We can still receive (half-close).";
    line(s.str(), "docs/01-echo.md#shutdown");
}

void Explain::closing(int fd) {
    if (!enabled_) return;
    snapshot(fd, "before close");
    std::ostringstream s;
    s << "close(fd " << fd << "): the descriptor is gone. If it was the last one for this "
      << "connection (no fork()ed copy remains) and we had not sent FIN yet, the kernel sends it "
      << "now (or RST, if unread data is left in the receive buffer); the side that sent the "
      << "first FIN waits in TIME_WAIT.";
    line(s.str(), "docs/01-echo.md#close");
    sends_.erase(fd);
    receives_.erase(fd);
}

void Explain::woke(std::string_view call, int ready) {
    if (!enabled_) return;
    std::ostringstream s;
    s << call << "() woke up: " << ready << " descriptor(s) ready";
    line(s.str(), wakeups_++ == 0 ? "docs/01-echo.md#poll" : "");
}

std::string Explain::describe_fd(int fd, bool readable, bool writable, short trouble) const {
    // What is this descriptor? Only asked when --explain is on.
    enum { kOther, kSocket, kListener, kStdin, kPipe } kind = kOther;
    struct stat st {};
    if (::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode)) {
        int on = 0;
        socklen_t len = sizeof on;
        const bool listening =
            ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on != 0;
        kind = listening ? kListener : kSocket;
    } else if (fd == STDIN_FILENO) {
        kind = kStdin;
    } else if (S_ISFIFO(st.st_mode)) {
        kind = kPipe;
    }
    static const char* const names[] = {"", " (socket)", " (listening socket)", " (stdin)",
                                        " (pipe)"};
    std::ostringstream s;
    s << "fd " << fd << names[kind];
    const char* sep = " ";
    if (readable) {
        s << sep << "readable";
        if (kind == kListener) s << " (a finished handshake waits in the accept queue)";
        if (kind == kSocket) s << " (data or a FIN waits in the receive buffer)";
        sep = ", ";
    }
    if (writable) {
        s << sep << "writable (the send buffer has room)";
        sep = ", ";
    }
    if (trouble & POLLERR) {
        s << sep << "error (e.g. a RST arrived)";
        sep = ", ";
    }
    if (trouble & POLLHUP) {
        if (kind == kSocket) {
            s << sep << "hung up (both directions finished: FIN sent and FIN received, or reset)";
        } else {
            s << sep << "hung up (the writing end is closed: end of input)";
        }
    }
    return s.str();
}

void Explain::polled(std::span<const pollfd> fds, int ready) {
    if (!enabled_) return;
    std::ostringstream s;
    s << "poll() woke up, " << ready << " ready:";
    const char* sep = " ";
    for (const pollfd& p : fds) {
        if (p.fd < 0 || p.revents == 0) continue;
        s << sep
          << describe_fd(p.fd, p.revents & POLLIN, p.revents & POLLOUT,
                         static_cast<short>(p.revents & (POLLERR | POLLHUP)));
        sep = "; ";
    }
    if (wakeups_++ == 0) {
        s << ". The process slept in the kernel until one of these changed; no packet is "
          << "sent by poll() itself. (Later wake-ups: one short line each.)";
        line(s.str(), "docs/01-echo.md#poll");
    } else {
        line(s.str(), "");
    }
}

void Explain::selected(int ready, const fd_set* readable, const fd_set* writable, int max_fd) {
    if (!enabled_) return;
    std::ostringstream s;
    s << "select() woke up, " << ready << " ready:";
    const char* sep = " ";
    for (int fd = 0; fd <= max_fd && fd < FD_SETSIZE; ++fd) {
        const bool r = readable != nullptr && FD_ISSET(fd, readable);
        const bool w = writable != nullptr && FD_ISSET(fd, writable);
        if (!r && !w) continue;
        s << sep << describe_fd(fd, r, w, 0);
        sep = "; ";
    }
    if (wakeups_++ == 0) {
        s << ". select() returned the sets with only the ready descriptors left in them; the "
          << "loop must rebuild them before the next call. (Later wake-ups: one short line each.)";
        line(s.str(), "docs/tcp-on-the-wire.md#select");
    } else {
        line(s.str(), "");
    }
}

void Explain::forked(pid_t child) {
    if (!enabled_) return;
    std::ostringstream s;
    if (child == 0) {
        tag_ = "[pid " + std::to_string(::getpid()) + "] ";
        s << "fork() returned 0: this is the child. It has copies of all the parent's "
          << "descriptors; it closes the listening socket and serves this one client.";
    } else {
        s << "fork() -> child pid " << child << ". The child got a copy of the descriptor table: "
          << "both processes now refer to the same sockets, so the parent closes its copy of the "
          << "client socket (the connection stays open in the child).";
    }
    line(s.str(), "docs/tcp-on-the-wire.md#fork");
}

void Explain::tls_message(bool sent, std::string_view message) {
    if (!enabled_) return;
    std::ostringstream s;
    s << "TLS: " << (sent ? "sent " : "received ") << message;
    const bool first = tls_seen_.insert(std::string(message)).second;
    if (first) {
        for (const TlsMessage& m : kTlsMessages) {
            if (m.name == message) {
                s << ": " << m.meaning;
                break;
            }
        }
        if (message == "close_notify") {
            s << ": TLS's own \"no more data\", sent before TCP's FIN so that a cut connection "
              << "cannot pass for a finished one";
        }
        s << ". It travels as TLS records inside ordinary TCP data segments.";
        line(s.str(), "docs/tcp-on-the-wire.md#tls");
    } else {
        line(s.str(), "");
    }
}

void Explain::tls_state(std::string_view openssl_state) {
    if (!enabled_) return;
    // "SSLv3/TLS write client hello", "TLSv1.3 read encrypted extensions" ...
    const bool writes = openssl_state.find(" write ") != std::string_view::npos;
    const bool reads = openssl_state.find(" read ") != std::string_view::npos;
    if (writes || reads) {
        for (const TlsMessage& m : kTlsMessages) {
            if (openssl_state.find(m.openssl_words) != std::string_view::npos) {
                std::string name(m.name);
                if (m.name == "KeyExchange") {
                    name = openssl_state.find("client") != std::string_view::npos
                               ? "ClientKeyExchange"
                               : "ServerKeyExchange";
                }
                tls_message(writes, name);
                return;
            }
        }
    }
    std::string text = "TLS state: ";
    text.append(openssl_state);
    line(text, "");
}

void Explain::tls_alert(bool sent, std::string_view description) {
    if (!enabled_) return;
    if (description == "close notify" || description == "CN") {
        tls_message(sent, "close_notify");
        return;
    }
    std::ostringstream s;
    s << "TLS: " << (sent ? "sent" : "received") << " alert \"" << description
      << "\": the handshake or the session failed, and the connection ends.";
    line(s.str(), "docs/tcp-on-the-wire.md#tls");
}

void Explain::tls_established(int fd, std::string_view version, std::string_view cipher) {
    if (!enabled_) return;
    std::ostringstream s;
    s << "TLS handshake finished on fd " << fd << ": " << version << ", cipher " << cipher
      << ". From now on SSL_write() encrypts into TLS records that go out as TCP data, and "
      << "SSL_read() decrypts them; TCP itself is unchanged underneath.";
    line(s.str(), "docs/tcp-on-the-wire.md#tls");
}

void Explain::snapshot(int fd, std::string_view when) {
    tcp_info info{};
    socklen_t len = sizeof info;
    if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return;
    const std::size_t have = len;
    std::ostringstream s;
    if (info.tcpi_state == kListenState) {
        // For a listening socket Linux reports its accept queue in these two fields.
        s << "TCP_INFO " << when << " fd " << fd << ": state LISTEN, accept queue "
          << info.tcpi_unacked << " connection(s) waiting, backlog " << info.tcpi_sacked;
        line(s.str(), "docs/tcp-on-the-wire.md#tcp_info");
        return;
    }
    s << "TCP_INFO " << when << " fd " << fd << ": state " << tcp_state_name(info.tcpi_state)
      << ", MSS " << info.tcpi_snd_mss << " bytes (advertised " << info.tcpi_advmss << "), RTT "
      << millis(info.tcpi_rtt) << " (variance " << millis(info.tcpi_rttvar) << "), RTO "
      << info.tcpi_rto / 1000 << " ms, delayed-ACK timeout " << info.tcpi_ato / 1000
      << " ms, congestion window " << info.tcpi_snd_cwnd << " segments";
    if (HAS_FIELD(have, tcpi_snd_wnd)) {
        s << ", peer's receive window " << info.tcpi_snd_wnd << " bytes";
    }
    s << ", receive space " << info.tcpi_rcv_space << " bytes, unacked " << info.tcpi_unacked
      << " segments, retransmitted " << info.tcpi_total_retrans << " segments";
    if (HAS_FIELD(have, tcpi_bytes_received)) {
        s << ", bytes acked " << info.tcpi_bytes_acked << ", bytes received "
          << info.tcpi_bytes_received;
    }
    line(s.str(), "docs/tcp-on-the-wire.md#tcp_info");
}

}  // namespace common
