// step1_echo/client.cpp: send stdin to the echo server, print what comes back.
//
// Read it beside docs/01-echo.md#the-client. The client's calls:
//
//     socket -> connect -> (send | recv)... -> shutdown(SHUT_WR) -> recv until 0 -> close
//
// It reads stdin and the socket at the same time with poll(). A client that
// first sends everything and only then reads deadlocks on large input: the
// server stops reading when its replies are not read, our send() then blocks
// forever, and neither side moves. docs/01-echo.md#why-poll

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>

#include "../common/error.hpp"
#include "../common/explain.hpp"
#include "../common/fd.hpp"
#include "../common/net.hpp"
#include "../common/options.hpp"

namespace {

// Stop reading stdin while this much is still waiting for the server.
constexpr std::size_t kMaxPending = 256 * 1024;

// [docs:client-connect]
// Steps 1-2: a socket connected to HOST:PORT, trying each address the name has.
common::Fd connect_to(const common::ClientOptions& opts, common::Explain& explain) {
    const std::string target = common::join_host_port(opts.host, opts.port);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(opts.timeout);
    std::string last_error = "no address";
    for (const common::Address& addr : common::resolve(opts.host, opts.port, /*passive=*/false)) {
        // Step 1: a new socket.  docs/01-echo.md#socket
        common::Fd sock(::socket(addr.family, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!sock) common::throw_errno("socket", target);
        explain.socket(sock.get(), addr.family);

        // Step 2: connect() sends SYN; the 3-way handshake is done once
        // SYN+ACK has come back and our ACK is sent. Non-blocking, connect()
        // returns at once (EINPROGRESS) and poll() waits for the handshake,
        // at most --timeout: a blocking connect() to a host that never
        // answers waits while the kernel resends SYN, over two minutes.
        // docs/01-echo.md#connect
        common::set_nonblocking(sock.get());
        int err = ::connect(sock.get(), addr.sa(), addr.length) == 0 ? 0 : errno;
        if (err == EINPROGRESS) err = common::finish_connect(sock.get(), deadline);
        if (err == 0) {
            explain.connected(sock.get(), common::format_address(addr));
            return sock;
        }
        last_error = err == EINPROGRESS  // our deadline passed, not the kernel's
                         ? "timed out after " + std::to_string(opts.timeout) + " s"
                         : std::generic_category().message(err);  // e.g. RST: Connection refused
    }
    throw std::runtime_error("connect " + target + ": " + last_error);
}
// [/docs]

int run(const common::ClientOptions& opts) {
    // [docs:sigpipe]
    common::ignore_sigpipe();  // a closed stdout or socket is an error we handle
    // [/docs]
    common::Explain explain(opts.explain);
    common::Fd sock = connect_to(opts, explain);

    std::string to_server;    // read from stdin, not yet accepted by send()
    bool stdin_open = true;   // until read() returns 0
    bool write_shut = false;  // after shutdown(SHUT_WR)
    std::array<char, 64 * 1024> buffer;

    while (true) {
        // [docs:client-poll]
        // Step 3: wait for stdin, the socket, or room to send.  docs/01-echo.md#poll
        const bool want_stdin = stdin_open && to_server.size() < kMaxPending;
        std::array<pollfd, 2> fds = {{
            {sock.get(), static_cast<short>(POLLIN | (to_server.empty() ? 0 : POLLOUT)), 0},
            {want_stdin ? STDIN_FILENO : -1, POLLIN, 0},  // fd -1: poll() skips it
        }};
        const int ready = ::poll(fds.data(), fds.size(), -1);
        if (ready < 0) {
            if (errno == EINTR) continue;
            common::throw_errno("poll");
        }
        // [/docs]
        explain.polled(fds, ready);

        // [docs:client-recv]
        // Step 4: the server sent something (or closed).  docs/01-echo.md#recv
        if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            const ssize_t got = ::recv(sock.get(), buffer.data(), buffer.size(), MSG_DONTWAIT);
            if (got < 0 && !common::is_transient(errno)) common::throw_errno("recv");
            if (got == 0) {  // the server's FIN: we are done
                explain.received(sock.get(), 0);
                break;
            }
            if (got > 0) {
                explain.received(sock.get(), static_cast<std::size_t>(got));
                common::send_all(STDOUT_FILENO, std::string_view(buffer.data(), got));
            }
        }
        // [/docs]

        // [docs:client-send]
        // Step 5: send what stdin gave us; send() may take only part of it.
        // docs/01-echo.md#send
        if ((fds[0].revents & POLLOUT) && !to_server.empty()) {
            const ssize_t n =
                ::send(sock.get(), to_server.data(), to_server.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0 && !common::is_transient(errno)) common::throw_errno("send");
            if (n > 0) {
                explain.sent(sock.get(), static_cast<std::size_t>(n));
                to_server.erase(0, static_cast<std::size_t>(n));
            }
        }
        // [/docs]

        // [docs:client-stdin]
        // Step 6: more from stdin.
        if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            const ssize_t got = ::read(STDIN_FILENO, buffer.data(), buffer.size());
            if (got < 0 && errno != EINTR) common::throw_errno("read", "stdin");
            if (got == 0) stdin_open = false;
            if (got > 0) to_server.append(buffer.data(), static_cast<std::size_t>(got));
        }
        // [/docs]

        // [docs:shutdown]
        // Step 7: stdin is finished and everything is sent: half-close. The
        // server sees FIN (recv returns 0) but can still send us the rest.
        // docs/01-echo.md#shutdown
        if (!stdin_open && to_server.empty() && !write_shut) {
            common::check(::shutdown(sock.get(), SHUT_WR), "shutdown");
            explain.shutdown_write(sock.get());
            write_shut = true;
        }
        // [/docs]
    }

    // [docs:client-close]
    // Step 8: both directions are finished.  docs/01-echo.md#close
    explain.closing(sock.get());
    sock.reset();
    // [/docs]
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const common::ClientOptions opts = common::parse_client_options(argc, argv, "7001");
    try {
        return run(opts);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n",
                     e.what());  // e.g. "connect localhost:7001: Connection refused"
        return 1;
    }
}
