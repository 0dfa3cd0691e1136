#include "explain.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sstream>

namespace common {
namespace {

const char* tcp_state_name(unsigned state) {
    static const char* const names[] = {"?",          "ESTABLISHED", "SYN_SENT",  "SYN_RECV",
                                        "FIN_WAIT1",  "FIN_WAIT2",   "TIME_WAIT", "CLOSE",
                                        "CLOSE_WAIT", "LAST_ACK",    "LISTEN",    "CLOSING"};
    return state < sizeof names / sizeof names[0] ? names[state] : "?";
}

}  // namespace

void Explain::line(std::string_view text, std::string_view docs_anchor) {
    if (!enabled_) return;
    std::string out = "explain: ";
    out.append(text);
    if (!docs_anchor.empty()) out.append(" [docs/").append(docs_anchor).append("]");
    out += '\n';
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
    line(s.str(), "01-echo.md#socket");
}

void Explain::setsockopt(int fd, std::string_view option) {
    if (!enabled_) return;
    std::ostringstream s;
    s << "setsockopt(fd " << fd << ", " << option << "). Only the socket's control information "
      << "changes; nothing is sent.";
    line(s.str(), "01-echo.md#setsockopt");
}

void Explain::bind(int fd, std::string_view address) {
    if (!enabled_) return;
    std::ostringstream s;
    s << "bind(fd " << fd << ", " << address << "). The socket now owns this local address and "
      << "port; no packet is sent.";
    line(s.str(), "01-echo.md#bind");
}

void Explain::listen(int fd, int backlog) {
    if (!enabled_) return;
    std::ostringstream s;
    s << "listen(fd " << fd << ", backlog " << backlog << ") -> LISTEN. From now on the kernel "
      << "answers each SYN with SYN+ACK by itself and queues finished handshakes until accept() "
      << "takes them.";
    line(s.str(), "01-echo.md#listen");
}

void Explain::accepted(int listen_fd, int fd, std::string_view peer) {
    if (!enabled_) return;
    std::ostringstream s;
    s << "accept(fd " << listen_fd << ") -> fd " << fd << " for " << peer
      << ". The 3-way handshake (SYN, SYN+ACK, ACK) had already finished in the kernel; accept() "
      << "took the new connection off the accept queue. No packet is sent.";
    line(s.str(), "01-echo.md#accept");
    snapshot(fd, "after accept");
}

void Explain::connected(int fd, std::string_view peer) {
    if (!enabled_) return;
    std::ostringstream s;
    s << "connect(fd " << fd << ", " << peer << ") returned: our SYN was answered by SYN+ACK and "
      << "our ACK is on its way; the connection is ESTABLISHED.";
    line(s.str(), "01-echo.md#connect");
    snapshot(fd, "after connect");
}

void Explain::sent(int fd, std::size_t bytes) {
    if (!enabled_) return;
    std::ostringstream s;
    if (sends_[fd]++ == 0) {
        s << "send(fd " << fd << ", " << bytes << " bytes) -> copied into the kernel's send "
          << "buffer. TCP cuts it into segments of at most MSS bytes, each with a sequence "
          << "number, and keeps a copy until the peer ACKs it.";
        line(s.str(), "01-echo.md#send");
    } else {
        s << "send(fd " << fd << ", " << bytes << " bytes)";
        line(s.str(), "");
    }
}

void Explain::received(int fd, std::size_t bytes) {
    if (!enabled_) return;
    std::ostringstream s;
    if (bytes == 0) {
        s << "recv(fd " << fd << ") -> 0: the peer sent FIN (it will send no more). Our kernel "
          << "ACKed it; the socket is in CLOSE_WAIT until we close our side.";
        line(s.str(), "01-echo.md#recv");
    } else if (receives_[fd]++ == 0) {
        s << "recv(fd " << fd << ") -> " << bytes << " bytes, copied out of the receive buffer. "
          << "The kernel already ACKed them (ACK number = last byte received + 1); reading "
          << "frees buffer space, which reopens the window it advertises.";
        line(s.str(), "01-echo.md#recv");
    } else {
        s << "recv(fd " << fd << ") -> " << bytes << " bytes";
        line(s.str(), "");
    }
}

void Explain::shutdown_write(int fd) {
    if (!enabled_) return;
    std::ostringstream s;
    s << "shutdown(fd " << fd << ", SHUT_WR): after the queued data the kernel sends FIN. "
      << "We can still receive (half-close).";
    line(s.str(), "01-echo.md#shutdown");
}

void Explain::closing(int fd) {
    if (!enabled_) return;
    snapshot(fd, "before close");
    std::ostringstream s;
    s << "close(fd " << fd << "): the descriptor is gone. If we had not sent FIN yet the kernel "
      << "sends it now; the side that closes first waits in TIME_WAIT.";
    line(s.str(), "01-echo.md#close");
    sends_.erase(fd);
    receives_.erase(fd);
}

void Explain::woke(std::string_view call, int ready) {
    if (!enabled_) return;
    std::ostringstream s;
    s << call << "() woke up: " << ready << " descriptor(s) ready";
    line(s.str(), "");
}

void Explain::forked(pid_t child) {
    if (!enabled_) return;
    std::ostringstream s;
    s << "fork() -> child pid " << child << ". The child got a copy of the descriptor table: "
      << "both processes now refer to the same sockets.";
    line(s.str(), "02-multiclient.md#fork");
}

void Explain::snapshot(int fd, std::string_view when) {
    tcp_info info{};
    socklen_t len = sizeof info;
    if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return;
    std::ostringstream s;
    s << "TCP_INFO " << when << " fd " << fd << ": state " << tcp_state_name(info.tcpi_state)
      << ", MSS " << info.tcpi_snd_mss << " bytes, RTT " << info.tcpi_rtt << " us (variance "
      << info.tcpi_rttvar << " us), RTO " << info.tcpi_rto / 1000 << " ms, congestion window "
      << info.tcpi_snd_cwnd << " segments, receive space " << info.tcpi_rcv_space
      << " bytes, retransmitted " << info.tcpi_total_retrans << " segments";
    line(s.str(), "tcp-on-the-wire.md#tcp_info");
}

}  // namespace common
