// step3_tls/client.cpp: the stage 2 chat client over TLS.
//
// Read it beside docs/03-tls.md#the-client, and diff it against
// step2_multiclient/client.cpp: after connect() comes a TLS handshake that
// verifies the server's certificate chain against our CA and the host name
// we asked for; then SSL_read/SSL_write replace recv/send, and the
// half-close sends close_notify before FIN.
//
//     socket -> connect -> SSL_connect (verify) -> (SSL_write | SSL_read)... -> SSL_shutdown ->
//     close
//
// (Stage 2's description follows; all of it still holds.)
//
// It is stage 1's client with one addition: the server's lines come from
// other people now, so they are printed with control bytes escaped (an ESC
// becomes the four characters \x1b). No peer can move the cursor, clear the
// screen or retitle the terminal of the person reading.
// docs/02-multiclient.md#the-client
//
// Read it beside docs/01-echo.md#the-client. The client's calls:
//
//     socket -> connect -> (send | recv)... -> shutdown(SHUT_WR) -> recv until 0 -> close
//
// It reads stdin and the socket at the same time with poll(). A client that
// first sends everything and only then reads deadlocks on large input: the
// server stops reading when its replies are not read, our send() then blocks
// forever, and neither side moves. docs/01-echo.md#why-poll

#include <openssl/ssl.h>
#include <openssl/x509v3.h>
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
#include "../common/text.hpp"
#include "tls.hpp"

namespace {

// Stop reading stdin while this much is still waiting for the server.
constexpr std::size_t kMaxPending = 256 * 1024;
// At most one TLS record (16 KiB of data) per SSL_write.
constexpr std::size_t kRecordSize = 16 * 1024;

// --ca, --cert, --key.
struct TlsOptions {
    std::string ca = tls::default_cert_path("ca.crt");  // next to the binary: step3_tls/certs/
    std::string cert, key;                              // our own, for mutual TLS
};

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

// Step 2b: the TLS handshake over the connected socket, verifying that the
// server's certificate chains to our CA and names the host we asked for.
// docs/03-tls.md#verifying-the-server
tls::Session start_tls(SSL_CTX* ctx, int sock, const common::ClientOptions& opts,
                       common::Explain& explain) {
    const std::string target = common::join_host_port(opts.host, opts.port);
    tls::Session ssl(::SSL_new(ctx));
    if (!ssl || ::SSL_set_fd(ssl.get(), sock) != 1) tls::throw_error("SSL_new", target);
    // [docs:verify-host]
    // The name is looked for in the certificate's subjectAltName only, never
    // in the subject's CN: RFC 6125 and the CA/Browser Forum rules, as every
    // browser does.  docs/03-tls.md#the-name-is-in-the-san-only
    ::X509_VERIFY_PARAM_set_hostflags(::SSL_get0_param(ssl.get()),
                                      X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
    if (tls::is_ip_literal(opts.host)) {
        // An address literal is checked against the certificate's IP SANs;
        // SNI carries host names only (RFC 6066), so none is sent.
        if (::X509_VERIFY_PARAM_set1_ip_asc(::SSL_get0_param(ssl.get()), opts.host.c_str()) != 1) {
            tls::throw_error("X509_VERIFY_PARAM_set1_ip_asc", opts.host);
        }
    } else {
        // SNI: the name goes into the ClientHello, so a server with several
        // certificates can pick the right one.
        if (::SSL_set_tlsext_host_name(ssl.get(), opts.host.c_str()) != 1) {
            tls::throw_error("SSL_set_tlsext_host_name", opts.host);
        }
        // Without this the chain check alone would accept ANY certificate our
        // CA signed, for any name: verify the DNS SAN matches.
        if (::SSL_set1_host(ssl.get(), opts.host.c_str()) != 1) {
            tls::throw_error("SSL_set1_host", opts.host);
        }
    }
    // ClientHello -> ... <- Finished; the chain and the name are checked in
    // the middle, and a failure aborts it. The socket is non-blocking:
    // SSL_connect returns WANT_READ/WANT_WRITE whenever it must wait, and we
    // wait with poll(), at most until --timeout, for a server that accepted
    // the connection and never answers.  docs/03-tls.md#ssl_connect
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(opts.timeout);
    int rc;
    while ((rc = ::SSL_connect(ssl.get())) != 1) {
        const int err = ::SSL_get_error(ssl.get(), rc);
        if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE) {
            throw std::runtime_error("TLS handshake with " + target + ": " +
                                     tls::failure_reason(ssl.get(), err));
        }
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        pollfd p{sock, static_cast<short>(err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT), 0};
        const int ready = left.count() > 0 ? ::poll(&p, 1, static_cast<int>(left.count())) : 0;
        if (ready < 0 && errno != EINTR) common::throw_errno("poll");
        if (ready == 0 && std::chrono::steady_clock::now() >= deadline) {
            throw std::runtime_error("TLS handshake with " + target + ": timed out after " +
                                     std::to_string(opts.timeout) + " s");
        }
    }
    // [/docs]
    tls::Certificate peer(::SSL_get1_peer_certificate(ssl.get()));
    std::fprintf(stderr, "%s, %s, verified %s\n", ::SSL_get_version(ssl.get()),
                 ::SSL_get_cipher_name(ssl.get()), tls::subject_line(peer.get()).c_str());
    explain.tls_established(sock, ::SSL_get_version(ssl.get()), ::SSL_get_cipher_name(ssl.get()));
    explain.note("the server proved it owns the key of a certificate our CA signed for this name",
                 "03-tls.md#ssl_connect");
    return ssl;
}

// Print the complete lines in `from_server` (all of it at EOF), escaped.
void print_lines(std::string& from_server, bool at_eof) {
    std::string out;
    std::size_t start = 0, newline;
    while ((newline = from_server.find('\n', start)) != std::string::npos) {
        out +=
            common::escape_controls(std::string_view(from_server).substr(start, newline - start));
        out += '\n';
        start = newline + 1;
    }
    if (at_eof && start < from_server.size()) {
        out += common::escape_controls(std::string_view(from_server).substr(start));
        out += '\n';
        start = from_server.size();
    }
    from_server.erase(0, start);
    if (!out.empty()) common::send_all(STDOUT_FILENO, out);
}

int run(const common::ClientOptions& opts, const TlsOptions& tls_opts) {
    common::ignore_sigpipe();  // a closed stdout or socket is an error we handle
    common::Explain explain(opts.explain);
    // Our settings and the CA we trust, before any packet is sent.
    tls::Context ctx = tls::make_client_context(tls_opts.ca, tls_opts.cert, tls_opts.key);
    tls::narrate(ctx.get(), explain);  // --explain: name each TLS message
    // to_server may move in memory when stdin appends to it while OpenSSL
    // waits to retry a write: allowed, as long as the retry passes the same
    // bytes.  docs/03-tls.md#ssl_write
    ::SSL_CTX_set_mode(ctx.get(), SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    common::Fd sock = connect_to(opts, explain);
    // The socket is non-blocking (connect_to): SSL_* may say WANT_READ/WANT_WRITE.
    tls::Session ssl = start_tls(ctx.get(), sock.get(), opts, explain);

    std::string to_server;          // read from stdin, not yet accepted by SSL_write()
    std::string from_server;        // the start of a line whose '\n' has not arrived
    bool stdin_open = true;         // until read() returns 0
    bool write_shut = false;        // after close_notify
    std::size_t retry = 0;          // bytes an SSL_write must be retried with (WANT_WRITE)
    bool read_wants_write = false;  // SSL_read must send something first
    std::array<char, 64 * 1024> buffer;

    while (true) {
        // Step 3: wait for stdin, the socket, or room to send.  docs/01-echo.md#poll
        const bool want_stdin = stdin_open && to_server.size() < kMaxPending;
        const bool want_out = (!to_server.empty() && !write_shut) || read_wants_write ||
                              (!stdin_open && to_server.empty() && !write_shut);
        std::array<pollfd, 2> fds = {{
            {sock.get(), static_cast<short>(POLLIN | (want_out ? POLLOUT : 0)), 0},
            {want_stdin ? STDIN_FILENO : -1, POLLIN, 0},  // fd -1: poll() skips it
        }};
        if (::poll(fds.data(), fds.size(), -1) < 0) {
            if (errno == EINTR) continue;
            common::throw_errno("poll");
        }

        // Step 4: the server sent something (or closed). One record per
        // SSL_read; repeat while OpenSSL holds decrypted bytes that poll()
        // cannot see.  docs/03-tls.md#ssl_read
        if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) ||
            (read_wants_write && (fds[0].revents & POLLOUT))) {
            read_wants_write = false;
            // [lesson:ssl-read]
            bool closed = false;
            do {
                std::size_t got = 0;
                const int rc = ::SSL_read_ex(ssl.get(), buffer.data(), buffer.size(), &got);
                if (rc == 1) {
                    explain.received(sock.get(), got);
                    from_server.append(buffer.data(), got);
                    continue;
                }
                const int err = ::SSL_get_error(ssl.get(), rc);
                if (err == SSL_ERROR_WANT_READ) break;  // the rest of the record is on its way
                if (err == SSL_ERROR_WANT_WRITE) {
                    read_wants_write = true;
                    break;
                }
                closed = true;
                if (err == SSL_ERROR_ZERO_RETURN) {  // close_notify: the server is done
                    explain.note("SSL_read -> end of stream: the server sent close_notify",
                                 "03-tls.md#close_notify");
                } else if (err == SSL_ERROR_SYSCALL && errno == ECONNRESET) {
                    std::fprintf(stderr, "connection reset by the server\n");
                } else {
                    // A bare FIN without close_notify ("unexpected eof"), or an
                    // alert such as "certificate required" (mutual TLS).
                    const std::string why = tls::failure_reason(ssl.get(), err);
                    if (why.find("unexpected eof") == std::string::npos) {
                        print_lines(from_server, /*at_eof=*/true);
                        throw std::runtime_error("tls: " + why);
                    }
                    std::fprintf(stderr, "the server closed without close_notify\n");
                }
                break;
            } while (::SSL_pending(ssl.get()) > 0);  // docs/03-tls.md#ssl_pending
            // [/lesson]
            // A "line" that never ends is printed in pieces, not hoarded.
            print_lines(from_server, /*at_eof=*/closed || from_server.size() > kMaxPending);
            if (closed) break;
        }

        // Step 5: send what stdin gave us, one record at a time. After
        // WANT_WRITE the same bytes must be passed again.  docs/03-tls.md#ssl_write
        if ((fds[0].revents & POLLOUT) && !to_server.empty() && !write_shut) {
            // [lesson:ssl-write]
            const std::size_t len = retry != 0 ? retry : std::min(to_server.size(), kRecordSize);
            std::size_t n = 0;
            const int rc = ::SSL_write_ex(ssl.get(), to_server.data(), len, &n);
            if (rc == 1) {
                explain.sent(sock.get(), n);
                to_server.erase(0, n);
                retry = 0;
            } else {
                const int err = ::SSL_get_error(ssl.get(), rc);
                if (err != SSL_ERROR_WANT_WRITE && err != SSL_ERROR_WANT_READ) {
                    throw std::runtime_error("SSL_write: " + tls::failure_reason(ssl.get(), err));
                }
                retry = len;
            }
            // [/lesson]
        }

        // Step 6: more from stdin.
        if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            const ssize_t got = ::read(STDIN_FILENO, buffer.data(), buffer.size());
            if (got < 0 && errno != EINTR) common::throw_errno("read", "stdin");
            if (got == 0) stdin_open = false;
            if (got > 0) to_server.append(buffer.data(), static_cast<std::size_t>(got));
        }

        // Step 7: stdin is finished and everything is sent: half-close with
        // close_notify, then FIN. The server reads EOF but can still send us
        // the rest.  docs/03-tls.md#close_notify
        if (!stdin_open && to_server.empty() && !write_shut) {
            // [lesson:close-notify]
            const int rc = ::SSL_shutdown(ssl.get());  // 0: sent, the server's is still to come
            if (rc >= 0) {
                common::check(::shutdown(sock.get(), SHUT_WR), "shutdown");
                explain.shutdown_write(sock.get());
                write_shut = true;
            } else if (const int err = ::SSL_get_error(ssl.get(), rc);
                       err != SSL_ERROR_WANT_WRITE && err != SSL_ERROR_WANT_READ) {
                throw std::runtime_error("SSL_shutdown: " + tls::failure_reason(ssl.get(), err));
            }
            // [/lesson]
        }
    }

    // Step 8: both directions are finished.  docs/01-echo.md#close
    explain.closing(sock.get());
    ssl.reset();  // SSL_free before close: the SSL uses the descriptor
    sock.reset();
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    TlsOptions tls_opts;
    auto path = [](std::string& out) {
        return [&out](std::string_view text) -> std::string {
            out = text;
            return text.empty() ? "empty path" : "";
        };
    };
    const common::ExtraOption extras[] = {
        {"ca", "PATH", "CA to verify the server against (default step3_tls/certs/ca.crt)",
         path(tls_opts.ca)},
        {"cert", "PATH", "our certificate, for mutual TLS (with --key)", path(tls_opts.cert)},
        {"key", "PATH", "its private key", path(tls_opts.key)},
    };
    const common::ClientOptions opts =
        common::parse_client_options(argc, argv, "7003", extras, "connect and the TLS handshake");
    if (tls_opts.cert.empty() != tls_opts.key.empty()) {
        std::fprintf(stderr, "%s: --cert and --key go together\n", argc > 0 ? argv[0] : "client");
        return 2;
    }
    try {
        return run(opts, tls_opts);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n",
                     e.what());  // e.g. "connect localhost:7002: Connection refused"
        return 1;
    }
}
