// tests/step3/tls_conn.hpp: a TLS connection from the test itself.
//
// Like the harness's Conn, but over TLS: a blocking OpenSSL client with every
// wait bounded (poll with a deadline, and SO_RCVTIMEO/SO_SNDTIMEO so no
// SSL call can hang a test), plus the certificate helpers the suite needs.
#pragma once

#include <openssl/ssl.h>

#include <optional>
#include <string>
#include <string_view>

#include "../../common/fd.hpp"
#include "../../step3_tls/tls.hpp"
#include "harness.hpp"

namespace test {

struct TlsOptions {
    std::string ca;                  // verify the server against this CA ("" = no check)
    std::string host = "localhost";  // the name checked and sent as SNI
    std::string cert, key;           // a client certificate (mutual TLS)
    int min_version = 0;             // e.g. TLS1_1_VERSION; 0 = OpenSSL's default
    int max_version = 0;
};

class TlsConn {
  public:
    // Connects to 127.0.0.1:port and runs the handshake (bounded by 5 s).
    explicit TlsConn(int port, TlsOptions opts = {});
    ~TlsConn();
    TlsConn(const TlsConn&) = delete;
    TlsConn& operator=(const TlsConn&) = delete;

    bool ok() const { return ok_; }                      // the handshake succeeded
    const std::string& error() const { return error_; }  // why not
    std::string version() const;                         // "TLSv1.3"
    std::string cipher() const;

    void send(std::string_view data);  // all of it; CHECKs that it worked
    std::optional<std::string> line(Duration timeout = 5000ms);
    std::string available(Duration timeout);
    std::string until_eof(Duration timeout = 5000ms);
    bool got_close_notify() const { return close_notify_; }
    bool eof() const { return eof_; }
    void send_close_notify();
    // The TCP socket under the TLS session (to write bytes TLS did not make).
    int raw_fd() const { return fd_.get(); }
    // The session itself, for a test that drives it without blocking.
    SSL* ssl() const { return ssl_.get(); }

  private:
    bool fill(std::chrono::steady_clock::time_point deadline);

    common::Fd fd_;
    tls::Context ctx_;
    tls::Session ssl_;
    bool ok_ = false;
    bool eof_ = false;
    bool close_notify_ = false;
    std::string error_;
    std::string buf_;        // decrypted, not yet taken: from taken_ on (see Reader)
    std::size_t taken_ = 0;  // a line taken moves this offset, not the bytes
    std::string take_rest();
};

// A ClientHello as OpenSSL would send it to `host` (for half-sent handshakes).
std::string client_hello(std::string_view host = "localhost");

// A temporary directory, removed with everything in it when the object dies.
class TempDir {
  public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& str() const { return path_; }
    std::string operator/(std::string_view name) const { return path_ + "/" + std::string(name); }

  private:
    std::string path_;
};

// Throwaway key material in a temporary directory: make-certs.sh's set (ca,
// server for localhost/127.0.0.1/::1, alice), plus whatever a test issues.
class Certs {
  public:
    Certs();  // runs step3_tls/make-certs.sh; REQUIREs success
    std::string operator/(std::string_view name) const { return dir_ / name; }
    const std::string& dir() const { return dir_.str(); }
    // NAME.key and NAME.crt signed by this CA, with an x509v3 extension
    // config line such as "subjectAltName=DNS:other.example" ("" for none),
    // valid for `days` from now (-1: expired yesterday).
    void issue(std::string_view name, std::string_view subject, std::string_view extension,
               int days = 30) const;

  private:
    TempDir dir_;
};

// The stage 3 server with these certificates on a free loopback port.
Server start_tls_server(const Certs& certs, std::vector<std::string> extra = {});

// Options that verify the server against these certificates' CA.
TlsOptions with_ca(const Certs& certs);

// A verified TLS client that has read its welcome line.
struct Member {
    TlsConn conn;
    std::string welcome;
    Member(int port, const Certs& certs);
};

}  // namespace test
