// step3_tls/tls.hpp: OpenSSL objects that free themselves, and the two SSL_CTX
// recipes (server, client) stage 3 uses.
//
// Read it beside docs/03-tls.md. OpenSSL hands out pointers that must be
// given back with the matching *_free call; a std::unique_ptr with that call
// as its deleter does it on every path, exceptions included, just as
// common::Fd closes descriptors. The calls stage 3 exists to teach
// (SSL_accept, SSL_connect, SSL_read, SSL_write, SSL_shutdown, SSL_pending)
// stay in server.cpp and client.cpp; this file only removes repetition.
#pragma once

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

namespace common {
class Explain;
}

namespace tls {

// --- RAII owners ------------------------------------------------------------

template <auto Free>
struct Deleter {
    template <typename T>
    void operator()(T* p) const {
        Free(p);
    }
};
using Context = std::unique_ptr<SSL_CTX, Deleter<SSL_CTX_free>>;  // settings + cert + key
using Session = std::unique_ptr<SSL, Deleter<SSL_free>>;          // one TLS connection
using Certificate = std::unique_ptr<X509, Deleter<X509_free>>;

// --- errors -----------------------------------------------------------------

// OpenSSL reports errors on a per-thread queue, not in errno. Empty the queue
// and return its reasons, oldest first, joined by ": " (for example
// "wrong version number"); "" when the queue was empty.
std::string take_errors();

// An error naming the call and its argument, then OpenSSL's reasons:
// "SSL_CTX_use_certificate_chain_file certs/server.crt: No such file or directory".
class Error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};
[[noreturn]] void throw_error(std::string_view call, std::string_view arg = {});

// Why SSL_accept / SSL_connect / SSL_read / SSL_write failed, in words, once
// SSL_get_error() said SSL_ERROR_SSL or SSL_ERROR_SYSCALL. Empties the queue.
// A failed certificate check reads "certificate verify failed: <X.509 reason>".
std::string failure_reason(const SSL* ssl, int ssl_error);

// --- contexts ---------------------------------------------------------------

struct ServerFiles {
    std::string cert;  // PEM certificate chain, the server's own first
    std::string key;   // PEM private key matching it
    std::string ca;    // CA to verify client certificates against ("" = none)
    bool require_client_cert = false;
};

// The server's SSL_CTX: TLS 1.2 minimum, no renegotiation, no compression,
// TLS 1.2 suites ECDHE + AEAD only, small idle buffers, cert and key loaded
// and checked against each other. Throws tls::Error naming the file, the
// reason and `make certs`.
Context make_server_context(const ServerFiles& files);

// The client's SSL_CTX: TLS 1.2 minimum, the peer's chain verified against
// `ca_file`, and our own certificate when `cert_file` is not empty.
Context make_client_context(const std::string& ca_file, const std::string& cert_file,
                            const std::string& key_file);

// Narrate every TLS message this context's connections send or receive
// (ClientHello, ServerHello ... Finished, close_notify) through
// `explain` (nothing happens when --explain is off). `explain` must outlive
// the context.
void narrate(SSL_CTX* ctx, common::Explain& explain);

// --- small helpers ----------------------------------------------------------

// "<stage directory>/certs/<file>", the stage directory being the one that
// holds this program's binary (/proc/self/exe), so ./server finds its
// certificates from the repository root and from step3_tls/ alike.
std::string default_cert_path(std::string_view file);

// Is `host` an IPv4 or IPv6 address literal (checked as an IP SAN, no SNI)?
bool is_ip_literal(std::string_view host);

// The subject's common name (CN), "" when there is none.
std::string common_name(X509* cert);
// The subject in one line, e.g. "CN=localhost".
std::string subject_line(X509* cert);

}  // namespace tls
