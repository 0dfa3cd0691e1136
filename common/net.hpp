// net.hpp: address resolution and formatting, and writing everything.
//
// These are the parts of socket code that repeat in every program and teach
// nothing new after the first time. The calls each stage exists to teach
// (socket, bind, listen, accept, connect, select ...) stay in the stage files.
#pragma once

#include <netdb.h>
#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fd.hpp"

namespace common {

// One result of getaddrinfo(), copied out so nothing needs freeaddrinfo().
struct Address {
    sockaddr_storage storage{};
    socklen_t length = 0;
    int family = AF_UNSPEC;
    int socktype = SOCK_STREAM;
    int protocol = 0;

    const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&storage); }
    sockaddr* sa() { return reinterpret_cast<sockaddr*>(&storage); }
};

// getaddrinfo() for TCP. passive=true gives addresses to bind() to (an empty
// host means every local address). Throws std::runtime_error naming the host
// and port, e.g. "getaddrinfo nosuchhost:7001: Name or service not known".
std::vector<Address> resolve(std::string_view host, std::string_view port, bool passive);

// "127.0.0.1:7001" or "[::1]:7001": numeric, with the port.
std::string format_address(const sockaddr* sa, socklen_t length);
inline std::string format_address(const Address& a) {
    return format_address(a.sa(), a.length);
}

// "HOST:PORT" for messages before anything is resolved ("[::1]:7001" for IPv6).
std::string join_host_port(std::string_view host, std::string_view port);

// The local address a socket is bound to (getsockname), formatted.
std::string local_address(int fd);

// Write all of `data` to a blocking descriptor (a socket, a pipe, stdout):
// loops over partial writes, retries after EINTR, and on a socket uses
// MSG_NOSIGNAL so a closed peer gives EPIPE instead of killing us with SIGPIPE.
// Throws std::system_error("send"/"write") on any other error.
void send_all(int fd, std::span<const std::byte> data);
inline void send_all(int fd, std::string_view text) {
    send_all(fd, std::as_bytes(std::span(text.data(), text.size())));
}

// After connect() on a non-blocking socket said EINPROGRESS: wait (poll for
// POLLOUT) until the TCP handshake has finished or `deadline` has passed.
// Returns 0 when connected, the connect error (SO_ERROR, e.g. ECONNREFUSED)
// when it failed, or EINPROGRESS when it was still going on at the deadline.
// docs/01-echo.md#connect
int finish_connect(int fd, std::chrono::steady_clock::time_point deadline);

// Make a descriptor non-blocking (O_NONBLOCK); throws "fcntl O_NONBLOCK".
void set_nonblocking(int fd);

// Ignore SIGPIPE for the whole process: writing to a closed socket or pipe
// then fails with EPIPE, which we handle, instead of ending the process.
void ignore_sigpipe();

}  // namespace common
