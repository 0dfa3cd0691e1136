#include "net.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

#include "error.hpp"

namespace common {

std::vector<Address> resolve(std::string_view host, std::string_view port, bool passive) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;  // IPv4 or IPv6, whichever the name has
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG | (passive ? AI_PASSIVE : 0);
    const std::string host_s(host), port_s(port);
    addrinfo* list = nullptr;
    int rc =
        ::getaddrinfo(host_s.empty() ? nullptr : host_s.c_str(), port_s.c_str(), &hints, &list);
    if (rc == EAI_NONAME || rc == EAI_ADDRFAMILY) {
        // AI_ADDRCONFIG hides ::1 on a host with no IPv6 address but loopback;
        // ask again without it so "--bind ::1" still works there.
        hints.ai_flags &= ~AI_ADDRCONFIG;
        rc =
            ::getaddrinfo(host_s.empty() ? nullptr : host_s.c_str(), port_s.c_str(), &hints, &list);
    }
    if (rc != 0) {
        std::string reason =
            rc == EAI_SYSTEM ? std::generic_category().message(errno) : ::gai_strerror(rc);
        throw std::runtime_error("getaddrinfo " + join_host_port(host, port) + ": " + reason);
    }
    std::vector<Address> out;
    for (const addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
        Address a;
        std::memcpy(&a.storage, ai->ai_addr, ai->ai_addrlen);
        a.length = ai->ai_addrlen;
        a.family = ai->ai_family;
        a.socktype = ai->ai_socktype;
        a.protocol = ai->ai_protocol;
        out.push_back(a);
    }
    ::freeaddrinfo(list);
    return out;
}

std::string format_address(const sockaddr* sa, socklen_t length) {
    char host[NI_MAXHOST];
    char port[NI_MAXSERV];
    if (::getnameinfo(sa, length, host, sizeof host, port, sizeof port,
                      NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        return "?";
    }
    return join_host_port(host, port);
}

std::string join_host_port(std::string_view host, std::string_view port) {
    std::string out;
    if (host.find(':') != std::string_view::npos) {
        out.append("[").append(host).append("]");
    } else {
        out.append(host);
    }
    return out.append(":").append(port);
}

std::string local_address(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    check(::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len), "getsockname");
    return format_address(reinterpret_cast<sockaddr*>(&ss), len);
}

void send_all(int fd, std::span<const std::byte> data) {
    struct stat st {};
    const bool is_socket = ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
    while (!data.empty()) {
        ssize_t n = is_socket ? ::send(fd, data.data(), data.size(), MSG_NOSIGNAL)
                              : ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) continue;  // a signal arrived; nothing was written
            throw_errno(is_socket ? "send" : "write");
        }
        data = data.subspan(static_cast<std::size_t>(n));  // partial write: go on
    }
}

void set_nonblocking(int fd) {
    int flags = check(::fcntl(fd, F_GETFL), "fcntl F_GETFL");
    check(::fcntl(fd, F_SETFL, flags | O_NONBLOCK), "fcntl O_NONBLOCK");
}

int finish_connect(int fd, std::chrono::steady_clock::time_point deadline) {
    while (true) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return EINPROGRESS;
        pollfd p{fd, POLLOUT, 0};
        const int ready = ::poll(&p, 1, static_cast<int>(left.count()));
        if (ready < 0 && errno == EINTR) continue;
        if (ready < 0) throw_errno("poll");
        if (ready == 0) continue;  // the deadline: looked at again above
        // Writable: the handshake is over, one way or the other.
        int err = 0;
        socklen_t len = sizeof err;
        check(::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len), "getsockopt SO_ERROR");
        return err;
    }
}

void ignore_sigpipe() {
    struct sigaction sa {};
    sa.sa_handler = SIG_IGN;
    check(::sigaction(SIGPIPE, &sa, nullptr), "sigaction SIGPIPE");
}

}  // namespace common
