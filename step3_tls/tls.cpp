#include "tls.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <filesystem>
#include <sstream>
#include <system_error>

#include "../common/explain.hpp"

namespace tls {
namespace {

using Bio = std::unique_ptr<BIO, Deleter<BIO_free>>;

// "run `make certs`" belongs to every complaint about the server's files.
constexpr std::string_view kHint = " (run `make certs` to create the stage 3 certificates)";

// A failed load of `what` (e.g. "certificate /x/server.crt"), with the reason
// and what to do about it.
[[noreturn]] void file_error(std::string_view what, std::string_view hint = kHint) {
    std::string reason = take_errors();
    if (reason.empty()) reason = "cannot be loaded";
    if (reason.find("Permission denied") != std::string::npos) {
        // Typically a SIGHUP after --user dropped root: the key is root's.
        hint = " (the file must be readable by the user the server runs as)";
    }
    throw Error(std::string(what) + ": " + reason + std::string(hint));
}

// The name of a handshake message type (RFC 8446 section 4), or nullptr.
const char* handshake_message(unsigned type) {
    switch (type) {
        case SSL3_MT_CLIENT_HELLO:
            return "ClientHello";
        case SSL3_MT_SERVER_HELLO:
            return "ServerHello";
        case SSL3_MT_NEWSESSION_TICKET:
            return "NewSessionTicket";
        case SSL3_MT_ENCRYPTED_EXTENSIONS:
            return "EncryptedExtensions";
        case SSL3_MT_CERTIFICATE:
            return "Certificate";
        case SSL3_MT_SERVER_KEY_EXCHANGE:
            return "ServerKeyExchange";
        case SSL3_MT_CERTIFICATE_REQUEST:
            return "CertificateRequest";
        case SSL3_MT_SERVER_DONE:
            return "ServerHelloDone";
        case SSL3_MT_CERTIFICATE_VERIFY:
            return "CertificateVerify";
        case SSL3_MT_CLIENT_KEY_EXCHANGE:
            return "ClientKeyExchange";
        case SSL3_MT_FINISHED:
            return "Finished";
        case SSL3_MT_KEY_UPDATE:
            return "KeyUpdate";
        default:
            return nullptr;
    }
}

// SSL_CTX_set_msg_callback: OpenSSL calls this for every protocol message it
// sends (write_p = 1) or receives (write_p = 0), before encryption / after
// decryption, so --explain can name what goes over the wire.
void on_message(int write_p, int /*version*/, int content_type, const void* buf, std::size_t len,
                SSL* /*ssl*/, void* arg) {
    auto& explain = *static_cast<common::Explain*>(arg);
    const auto* bytes = static_cast<const unsigned char*>(buf);
    if (content_type == SSL3_RT_HANDSHAKE && len >= 1) {
        if (const char* name = handshake_message(bytes[0])) explain.tls_message(write_p, name);
    } else if (content_type == SSL3_RT_ALERT && len >= 2) {
        // "close notify", "unknown CA", "certificate required" ...
        explain.tls_alert(write_p, SSL_alert_desc_string_long(bytes[1]));
    }
}

}  // namespace

std::string take_errors() {
    std::string out;
    const char* data = nullptr;
    int flags = 0;
    while (unsigned long code = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) {
        std::string reason;
        if (ERR_SYSTEM_ERROR(code)) {  // a failed system call: the reason is errno
            reason = std::generic_category().message(ERR_GET_REASON(code));
        } else if (const char* text = ERR_reason_error_string(code)) {
            reason = text;
        } else {
            reason = "OpenSSL error " + std::to_string(code);
        }
        // "system lib", "PEM lib": only "a layer below failed", which the
        // entries around it say better.
        if (reason.size() > 4 && reason.ends_with(" lib")) continue;
        if (out.find(reason) != std::string::npos) continue;  // say each reason once
        if (!out.empty()) out += ": ";
        out += reason;
    }
    return out;
}

void throw_error(std::string_view call, std::string_view arg) {
    std::string what(call);
    if (!arg.empty()) what.append(" ").append(arg);
    const std::string reason = take_errors();
    throw Error(what + ": " + (reason.empty() ? "failed" : reason));
}

std::string failure_reason(const SSL* ssl, int ssl_error) {
    const int saved_errno = errno;
    std::string queue = take_errors();
    // The certificate check failed: X.509 keeps its own, more precise reason.
    const long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK && queue.find("certificate verify failed") != std::string::npos) {
        return std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify);
    }
    if (!queue.empty()) return queue;
    if (ssl_error == SSL_ERROR_SYSCALL) {
        // An I/O error, or (errno 0) the peer closed TCP without a close_notify.
        return saved_errno != 0 ? std::generic_category().message(saved_errno)
                                : "connection closed during TLS";
    }
    if (ssl_error == SSL_ERROR_ZERO_RETURN) return "the peer sent close_notify";
    return "TLS error " + std::to_string(ssl_error);
}

Context make_server_context(const ServerFiles& files) {
    ERR_clear_error();
    // One SSL_CTX holds what every connection shares: protocol settings, the
    // certificate and its key. docs/03-tls.md#the-server-context
    Context ctx(SSL_CTX_new(TLS_server_method()));
    if (!ctx) throw_error("SSL_CTX_new");
    SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);  // TLS 1.0/1.1 are broken
    // No renegotiation (a mid-connection handshake the select loop would have
    // to expect anywhere), no compression (CRIME), our suite order wins, and
    // a client's bare FIN reads as EOF like in stage 2 (docs/protocol.md#leaving:
    // a plain FIN or TLS close_notify): its last line is then taken as sent, as without TLS.
    SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                       SSL_OP_CIPHER_SERVER_PREFERENCE |
                                       SSL_OP_IGNORE_UNEXPECTED_EOF);
    // TLS 1.2 suites: forward-secret key exchange (ECDHE) and an AEAD cipher.
    // TLS 1.3 suites are set by SSL_CTX_set_ciphersuites; its defaults are good.
    if (SSL_CTX_set_cipher_list(ctx.get(), "ECDHE+AESGCM:ECDHE+CHACHA20") != 1) {
        throw_error("SSL_CTX_set_cipher_list");
    }
    // An idle connection gives its 16+ KiB record buffers back.
    SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS);
    // No session resumption: no tickets to send, no cache to keep.
    SSL_CTX_set_num_tickets(ctx.get(), 0);
    SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);

    // The chain the server presents, then the private key that proves it owns
    // the certificate; OpenSSL checks that they belong together.
    // docs/03-tls.md#certificates
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), files.cert.c_str()) != 1) {
        file_error("certificate " + files.cert);
    }
    if (SSL_CTX_use_PrivateKey_file(ctx.get(), files.key.c_str(), SSL_FILETYPE_PEM) != 1) {
        file_error("private key " + files.key + " (for " + files.cert + ")");
    }
    if (SSL_CTX_check_private_key(ctx.get()) != 1) {
        file_error("private key " + files.key + " does not match " + files.cert);
    }

    if (!files.ca.empty()) {
        // Mutual TLS: ask for a client certificate and verify it against the
        // CA; with require_client_cert a client without one is refused.
        // docs/03-tls.md#mutual-tls
        if (SSL_CTX_load_verify_locations(ctx.get(), files.ca.c_str(), nullptr) != 1) {
            file_error("CA " + files.ca, "");
        }
        // Tell clients which CA we accept (in CertificateRequest).
        STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(files.ca.c_str());
        if (names == nullptr) file_error("CA " + files.ca, "");
        SSL_CTX_set_client_CA_list(ctx.get(), names);  // ctx owns `names` now
        SSL_CTX_set_verify(
            ctx.get(),
            SSL_VERIFY_PEER | (files.require_client_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
            nullptr);
    }
    return ctx;
}

Context make_client_context(const std::string& ca_file, const std::string& cert_file,
                            const std::string& key_file) {
    ERR_clear_error();
    Context ctx(SSL_CTX_new(TLS_client_method()));
    if (!ctx) throw_error("SSL_CTX_new");
    SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
    SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    // The CA we trust, and: abort the handshake when the chain does not
    // verify. docs/03-tls.md#verifying-the-server
    if (SSL_CTX_load_verify_locations(ctx.get(), ca_file.c_str(), nullptr) != 1) {
        file_error("CA " + ca_file, "");
    }
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    if (!cert_file.empty()) {
        if (SSL_CTX_use_certificate_chain_file(ctx.get(), cert_file.c_str()) != 1) {
            file_error("certificate " + cert_file, "");
        }
        if (SSL_CTX_use_PrivateKey_file(ctx.get(), key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
            file_error("private key " + key_file + " (for " + cert_file + ")", "");
        }
        if (SSL_CTX_check_private_key(ctx.get()) != 1) {
            file_error("private key " + key_file + " does not match " + cert_file, "");
        }
    }
    return ctx;
}

void narrate(SSL_CTX* ctx, common::Explain& explain) {
    if (!explain.enabled()) return;
    SSL_CTX_set_msg_callback(ctx, on_message);
    SSL_CTX_set_msg_callback_arg(ctx, &explain);
}

std::string default_cert_path(std::string_view file) {
    std::error_code ec;
    const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    const std::filesystem::path stage = ec ? std::filesystem::path("step3_tls") : exe.parent_path();
    return (stage / "certs" / file).string();
}

bool is_ip_literal(std::string_view host) {
    const std::string h(host);
    in6_addr addr{};
    return ::inet_pton(AF_INET, h.c_str(), &addr) == 1 ||
           ::inet_pton(AF_INET6, h.c_str(), &addr) == 1;
}

std::string common_name(X509* cert) {
    if (cert == nullptr) return "";
    X509_NAME* name = X509_get_subject_name(cert);
    const int index = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (index < 0) return "";
    ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
    unsigned char* utf8 = nullptr;
    const int len = ASN1_STRING_to_UTF8(&utf8, data);
    if (len < 0) return "";
    std::string out(reinterpret_cast<const char*>(utf8), static_cast<std::size_t>(len));
    OPENSSL_free(utf8);
    return out;
}

std::string subject_line(X509* cert) {
    if (cert == nullptr) return "";
    Bio bio(BIO_new(BIO_s_mem()));
    if (!bio) return "";
    X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(len > 0 ? len : 0));
}

}  // namespace tls
