#include "tls_conn.hpp"

#include <netinet/in.h>
#include <openssl/err.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include "../../common/net.hpp"
#include "doctest.h"

namespace test {
namespace {

using Clock = std::chrono::steady_clock;

int ms_until(Clock::time_point deadline) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    return static_cast<int>(std::max<long long>(0, ms.count()));
}

common::Fd dial(int port) {
    common::Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (!fd || ::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        throw std::runtime_error("test could not connect to port " + std::to_string(port));
    }
    // No blocking SSL call may hang the test: each socket wait ends after 5 s.
    timeval tv{5, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
}

}  // namespace

TlsConn::TlsConn(int port, TlsOptions opts) : fd_(dial(port)) {
    ERR_clear_error();
    ctx_.reset(SSL_CTX_new(TLS_client_method()));
    REQUIRE(ctx_);
    if (opts.min_version != 0) {
        // TLS 1.0/1.1 need SHA-1 signatures, which security level 1 forbids.
        if (opts.min_version < TLS1_2_VERSION) SSL_CTX_set_security_level(ctx_.get(), 0);
        SSL_CTX_set_min_proto_version(ctx_.get(), opts.min_version);
    }
    if (opts.max_version != 0) SSL_CTX_set_max_proto_version(ctx_.get(), opts.max_version);
    if (!opts.ca.empty()) {
        REQUIRE(SSL_CTX_load_verify_locations(ctx_.get(), opts.ca.c_str(), nullptr) == 1);
        SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_PEER, nullptr);
    }
    if (!opts.cert.empty()) {
        REQUIRE(SSL_CTX_use_certificate_chain_file(ctx_.get(), opts.cert.c_str()) == 1);
        REQUIRE(SSL_CTX_use_PrivateKey_file(ctx_.get(), opts.key.c_str(), SSL_FILETYPE_PEM) == 1);
    }
    ssl_.reset(SSL_new(ctx_.get()));
    REQUIRE(ssl_);
    SSL_set_fd(ssl_.get(), fd_.get());
    if (!opts.host.empty() && !tls::is_ip_literal(opts.host)) {
        SSL_set_tlsext_host_name(ssl_.get(), opts.host.c_str());
        SSL_set1_host(ssl_.get(), opts.host.c_str());
    }
    const int rc = SSL_connect(ssl_.get());
    if (rc == 1) {
        ok_ = true;
    } else {
        error_ = tls::failure_reason(ssl_.get(), SSL_get_error(ssl_.get(), rc));
    }
}

TlsConn::~TlsConn() = default;

std::string TlsConn::version() const {
    return SSL_get_version(ssl_.get());
}

std::string TlsConn::cipher() const {
    return SSL_get_cipher_name(ssl_.get());
}

void TlsConn::send(std::string_view data) {
    REQUIRE(ok_);
    std::size_t done = 0;
    while (done < data.size()) {
        std::size_t written = 0;
        const int rc = SSL_write_ex(ssl_.get(), data.data() + done, data.size() - done, &written);
        if (rc != 1) {
            FAIL("SSL_write: " << tls::failure_reason(ssl_.get(), SSL_get_error(ssl_.get(), 0)));
        }
        done += written;
    }
}

bool TlsConn::fill(Clock::time_point deadline) {
    if (eof_ || !ok_) return false;
    if (SSL_pending(ssl_.get()) == 0) {
        pollfd p{fd_.get(), POLLIN, 0};
        if (::poll(&p, 1, ms_until(deadline)) <= 0) return false;
    }
    char chunk[16384];
    std::size_t got = 0;
    const int rc = SSL_read_ex(ssl_.get(), chunk, sizeof chunk, &got);
    if (rc != 1) {
        const int err = SSL_get_error(ssl_.get(), rc);
        if (err == SSL_ERROR_WANT_READ) return true;  // a record without data (e.g. a ticket)
        close_notify_ = (err == SSL_ERROR_ZERO_RETURN);
        if (!close_notify_) error_ = tls::failure_reason(ssl_.get(), err);
        eof_ = true;  // close_notify, TCP EOF or an error: nothing more will come
        return false;
    }
    buf_.erase(0, std::exchange(taken_, 0));  // once per read, not per line
    buf_.append(chunk, got);
    return true;
}

std::optional<std::string> TlsConn::line(Duration timeout) {
    const auto deadline = Clock::now() + timeout;
    while (true) {
        if (auto nl = buf_.find('\n', taken_); nl != std::string::npos) {
            std::string out = buf_.substr(taken_, nl - taken_);
            taken_ = nl + 1;
            return out;
        }
        if (!fill(deadline) && (eof_ || Clock::now() >= deadline)) return std::nullopt;
    }
}

std::string TlsConn::available(Duration timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!eof_ && Clock::now() < deadline)
        fill(deadline);
    return take_rest();
}

std::string TlsConn::until_eof(Duration timeout) {
    const auto deadline = Clock::now() + timeout;
    while (!eof_) {
        if (!fill(deadline) && (eof_ || Clock::now() >= deadline)) break;
    }
    return take_rest();
}

std::string TlsConn::take_rest() {
    buf_.erase(0, std::exchange(taken_, 0));
    return std::exchange(buf_, {});
}

void TlsConn::send_close_notify() {
    if (ok_) SSL_shutdown(ssl_.get());
}

std::string client_hello(std::string_view host) {
    // A client that talks to two memory buffers instead of a socket: what it
    // would send lands in `out`.
    tls::Context ctx(SSL_CTX_new(TLS_client_method()));
    REQUIRE(ctx);
    tls::Session ssl(SSL_new(ctx.get()));
    REQUIRE(ssl);
    BIO* in = BIO_new(BIO_s_mem());
    BIO* out = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl.get(), in, out);  // ssl owns both now
    const std::string name(host);
    SSL_set_tlsext_host_name(ssl.get(), name.c_str());
    REQUIRE(SSL_connect(ssl.get()) == -1);  // WANT_READ: waiting for ServerHello
    char* data = nullptr;
    const long len = BIO_get_mem_data(out, &data);
    REQUIRE(len > 0);
    return std::string(data, static_cast<std::size_t>(len));
}

Certs::Certs() {
    std::string out;
    const int rc = shell(repo_path("step3_tls/make-certs.sh") + " " + dir_.str() + " 2>&1", &out);
    INFO(out);
    REQUIRE(rc == 0);
}

void Certs::issue(std::string_view name, std::string_view subject, std::string_view extension,
                  int days) const {
    const std::string n = dir_ / name;
    write_file(n + ".ext", std::string(extension) + "\n");
    const std::string cmd =
        "set -e; cd " + dir_.str() +
        "; openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -noenc -keyout " + n +
        ".key -out " + n + ".csr -subj '" + std::string(subject) +
        "' 2>&1; openssl x509 -req -in " + n + ".csr -CA ca.crt -CAkey ca.key -days " +
        std::to_string(days) + " -extfile " + n + ".ext -out " + n + ".crt 2>&1";
    std::string out;
    const int rc = shell(cmd, &out);
    INFO(out);
    REQUIRE(rc == 0);
}

Server start_tls_server(const Certs& certs, std::vector<std::string> extra) {
    std::vector<std::string> args = {"--cert", certs / "server.crt", "--key", certs / "server.key"};
    args.insert(args.end(), extra.begin(), extra.end());
    return start_server("step3_tls/server", args);
}

TempDir::TempDir() {
    std::string templ = "/tmp/socktest-dir-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = templ;
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

TlsOptions with_ca(const Certs& certs) {
    TlsOptions o;
    o.ca = certs / "ca.crt";
    return o;
}

Member::Member(int port, const Certs& certs) : conn(port, with_ca(certs)) {
    INFO("handshake: " << conn.error());
    REQUIRE(conn.ok());
    auto line = conn.line();
    REQUIRE(line.has_value());
    welcome = *line;
}

}  // namespace test
