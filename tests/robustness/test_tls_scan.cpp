// tests/robustness/test_tls_scan.cpp: the stage 3 server's TLS configuration,
// as a scanner sees it from outside.
//
// sslscan tries every protocol version and cipher suite it knows, asks for
// renegotiation and compression, and prints the certificate. The server must
// offer TLS 1.2 and 1.3 only, TLS 1.2 suites with ECDHE key exchange and an
// AEAD cipher only, no insecure renegotiation, no compression, and serve the
// EC P-256 certificate `make certs` made. sslscan's own OpenSSL is built
// without zlib and cannot ask for compression, so a second test does: it
// offers DEFLATE in a TLS 1.2 ClientHello and reads the ServerHello's choice.
// The summary is in docs/03-tls.md#configuration-scan.
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <map>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "doctest.h"
#include "harness.hpp"

using namespace test;

namespace {

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        out.push_back(line);
    return out;
}

bool has(const std::string& text, const std::string& what) {
    return text.find(what) != std::string::npos;
}

// The first PEM block in `text` (the server's own certificate in a chain file).
std::string first_pem(const std::string& text) {
    const auto begin = text.find("-----BEGIN CERTIFICATE-----");
    const std::string end_marker = "-----END CERTIFICATE-----";
    const auto end = text.find(end_marker, begin);
    if (begin == std::string::npos || end == std::string::npos) return "";
    return text.substr(begin, end + end_marker.size() - begin);
}

// A TLS 1.2 ClientHello as OpenSSL writes it (memory BIOs, no socket).
std::string tls12_client_hello() {
    const std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()),
                                                                SSL_CTX_free);
    REQUIRE(ctx != nullptr);
    SSL_CTX_set_max_proto_version(ctx.get(), TLS1_2_VERSION);
    const std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.get()), SSL_free);
    BIO* wbio = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl.get(), BIO_new(BIO_s_mem()), wbio);  // ssl owns both now
    SSL_set_tlsext_host_name(ssl.get(), "localhost");
    CHECK(SSL_connect(ssl.get()) == -1);  // WANT_READ: the ClientHello is written
    char* data = nullptr;
    const long n = BIO_get_mem_data(wbio, &data);
    return std::string(data, static_cast<std::size_t>(n));
}

unsigned be16(const std::string& s, std::size_t at) {
    return static_cast<unsigned>(static_cast<unsigned char>(s[at])) << 8 |
           static_cast<unsigned char>(s[at + 1]);
}
void put_be16(std::string& s, std::size_t at, unsigned v) {
    s[at] = static_cast<char>(v >> 8);
    s[at + 1] = static_cast<char>(v & 0xff);
}
void put_be24(std::string& s, std::size_t at, unsigned v) {
    s[at] = static_cast<char>(v >> 16);
    s[at + 1] = static_cast<char>((v >> 8) & 0xff);
    s[at + 2] = static_cast<char>(v & 0xff);
}

// The same ClientHello offering DEFLATE (1) before null (0) compression.
std::string offering_deflate(std::string hello) {
    // record header (5) | handshake type (1) length (3) | version (2) random (32)
    REQUIRE(hello.size() > 5 + 4 + 34 + 1);
    REQUIRE(hello[0] == 22);                      // handshake record
    REQUIRE(hello[5] == 1);                       // ClientHello
    REQUIRE(be16(hello, 3) == hello.size() - 5);  // one record holds all of it
    std::size_t at = 5 + 4 + 2 + 32;
    at += 1 + static_cast<unsigned char>(hello[at]);  // session id
    at += 2 + be16(hello, at);                        // cipher suites
    REQUIRE(hello[at] == 1);                          // one method ...
    REQUIRE(hello[at + 1] == 0);                      // ... null
    hello.replace(at, 2, std::string("\x02\x01\x00", 3));
    put_be16(hello, 3, static_cast<unsigned>(hello.size() - 5));
    put_be24(hello, 6, static_cast<unsigned>(hello.size() - 9));
    return hello;
}

}  // namespace

TEST_CASE("TLS scan (sslscan): TLS 1.2/1.3 only, ECDHE+AEAD, no insecure renegotiation, P-256") {
    Server s = start_server("step3_tls/server");
    std::string out;
    REQUIRE(shell("sslscan --no-colour --show-certificate 127.0.0.1:" + std::to_string(s.port),
                  &out, 60000ms) == 0);
    INFO("sslscan said:\n" << out);

    // Protocol versions: each line "TLSv1.2   enabled".
    const std::regex version_line(R"(^(SSLv2|SSLv3|TLSv1\.[0-3])\s+(enabled|disabled)\s*$)");
    std::map<std::string, std::string> versions;
    // Suites: "Accepted  TLSv1.2  128 bits  ECDHE-ECDSA-AES128-GCM-SHA256 ..."
    const std::regex suite_line(R"(^(Accepted|Preferred)\s+(\S+)\s+\d+\s+bits\s+(\S+))");
    int tls12_suites = 0, tls13_suites = 0;
    for (const std::string& line : lines_of(out)) {
        std::smatch m;
        if (std::regex_search(line, m, version_line)) versions[m[1]] = m[2];
        if (std::regex_search(line, m, suite_line)) {
            const std::string version = m[2], suite = m[3];
            INFO("suite line: " << line);
            CHECK((version == "TLSv1.2" || version == "TLSv1.3"));
            if (version == "TLSv1.2") {
                ++tls12_suites;
                CHECK(suite.rfind("ECDHE-", 0) == 0);  // forward secrecy
                CHECK((has(suite, "-GCM-") || has(suite, "CHACHA20-POLY1305") ||
                       has(suite, "-CCM")));  // AEAD: no CBC, no RC4, no NULL
            }
            if (version == "TLSv1.3") ++tls13_suites;
        }
    }
    CHECK(versions["SSLv2"] == "disabled");
    CHECK(versions["SSLv3"] == "disabled");
    CHECK(versions["TLSv1.0"] == "disabled");
    CHECK(versions["TLSv1.1"] == "disabled");
    CHECK(versions["TLSv1.2"] == "enabled");
    CHECK(versions["TLSv1.3"] == "enabled");
    CHECK(tls12_suites > 0);
    CHECK(tls13_suites > 0);

    CHECK_FALSE(has(out, "Insecure session renegotiation supported"));
    CHECK((has(out, "Session renegotiation not supported") ||
           has(out, "Secure session renegotiation supported")));
    CHECK_FALSE(has(out, "Compression enabled"));
    for (const std::string& line : lines_of(out)) {
        if (has(line, "vulnerable to heartbleed")) CHECK(has(line, "not vulnerable"));
    }

    // The certificate is make-certs.sh's: the same PEM, an EC P-256 key, ECDSA.
    const std::string served = first_pem(out);
    REQUIRE_FALSE(served.empty());
    CHECK(served == first_pem(read_file(repo_path("step3_tls/certs/server.crt"))));
    CHECK(std::regex_search(out, std::regex(R"(ECC Curve Name:\s+prime256v1)")));
    CHECK(std::regex_search(out, std::regex(R"(Signature Algorithm:\s+ecdsa-with-SHA256)")));
    CHECK(std::regex_search(out, std::regex(R"(Subject:\s+localhost)")));
}

TEST_CASE("TLS scan: the key is EC P-256 and belongs to the served certificate") {
    const std::string key = repo_path("step3_tls/certs/server.key");
    const std::string cert = repo_path("step3_tls/certs/server.crt");
    std::string text, from_key, from_cert;
    REQUIRE(shell("openssl pkey -in " + key + " -noout -text", &text) == 0);
    CHECK(has(text, "ASN1 OID: prime256v1"));
    REQUIRE(shell("openssl pkey -in " + key + " -pubout", &from_key) == 0);
    REQUIRE(shell("openssl x509 -in " + cert + " -noout -pubkey", &from_cert) == 0);
    CHECK(from_key == from_cert);
}

TEST_CASE("TLS scan: a ClientHello offering DEFLATE gets null compression") {
    Server s = start_server("step3_tls/server");
    Conn c(s.port);
    c.send(offering_deflate(tls12_client_hello()));
    const std::string header = c.exact(5);
    REQUIRE(header.size() == 5);
    REQUIRE(header[0] == 22);  // a handshake record, not an alert
    const std::string body = c.exact(be16(header, 3));
    REQUIRE(body.size() > 4 + 2 + 32 + 1);
    REQUIRE(body[0] == 2);  // ServerHello
    std::size_t at = 4 + 2 + 32;
    at += 1 + static_cast<unsigned char>(body[at]);  // session id
    at += 2;                                         // the chosen suite
    REQUIRE(at < body.size());
    CHECK(static_cast<int>(body[at]) == 0);  // null: no compression (no CRIME)
}
