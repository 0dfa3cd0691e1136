// Stage 3: certificates. What the client verifies, what the server needs to
// start, mutual TLS, and SIGHUP reloading the certificate.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <string>

#include "../../common/net.hpp"
#include "doctest.h"
#include "harness.hpp"
#include "tls_conn.hpp"

using namespace test;

namespace {

// Our client, connecting to HOST:port with `args`; stdin is a pipe.
Child run_client(const std::string& host, int port, std::vector<std::string> args) {
    std::vector<std::string> argv = {repo_path("step3_tls/client"), host, std::to_string(port)};
    argv.insert(argv.end(), args.begin(), args.end());
    return Child(argv, SpawnOptions{true, "", "", {}});
}

// The client must refuse the server: exit 1, the reason on stderr, and no
// chat line on stdout.
void expect_refused(Child& client, const std::string& reason) {
    const auto rc = client.wait(5000ms);
    INFO("client stderr: " << client.stderr_text());
    CHECK(rc == 1);
    CHECK(client.stderr_text().find(reason) != std::string::npos);
    CHECK(client.out().until_eof(1000ms).empty());
}

}  // namespace

TEST_CASE("make-certs.sh: CA, server and alice, EC P-256, keys mode 0600, SANs as promised") {
    Certs certs;
    for (const char* key : {"ca.key", "server.key", "alice.key"}) {
        struct stat st {};
        REQUIRE(::stat((certs / key).c_str(), &st) == 0);
        CHECK_MESSAGE((st.st_mode & 0777) == 0600, key);
    }
    std::string text;
    REQUIRE(shell("openssl x509 -noout -text -in " + (certs / "server.crt"), &text) == 0);
    CHECK(text.find("DNS:localhost") != std::string::npos);
    CHECK(text.find("IP Address:127.0.0.1") != std::string::npos);
    CHECK(text.find("IP Address:0:0:0:0:0:0:0:1") != std::string::npos);
    CHECK(text.find("NIST CURVE: P-256") != std::string::npos);
    REQUIRE(shell("openssl x509 -noout -subject -in " + (certs / "alice.crt"), &text) == 0);
    CHECK(text.find("CN = alice") != std::string::npos);
}

TEST_CASE("client: verifies and says so: protocol, cipher, subject on stderr; then chats") {
    Certs certs;
    Server s = start_tls_server(certs);
    Child c = run_client("localhost", s.port, {"--ca", certs / "ca.crt"});
    CHECK(c.out().line() == "* welcome guest-1 (1 online)");
    common::send_all(c.stdin_fd(), "/who\n");
    CHECK(c.out().line() == "* online: guest-1");
    c.close_stdin();  // EOF: close_notify, the server closes, we exit 0
    CHECK(c.wait(5000ms) == 0);
    const std::string err = c.stderr_text();
    CHECK(err.find("TLSv1.3") != std::string::npos);
    CHECK(err.find("TLS_AES_") != std::string::npos);
    CHECK(err.find("CN=localhost") != std::string::npos);
}

TEST_CASE("client: control bytes from a peer arrive escaped, as in stage 2") {
    Certs certs;
    Server s = start_tls_server(certs);
    Child c = run_client("localhost", s.port, {"--ca", certs / "ca.crt"});
    REQUIRE(c.out().line() == "* welcome guest-1 (1 online)");
    TlsOptions o = with_ca(certs);
    TlsConn peer(s.port, o);
    REQUIRE(peer.ok());
    CHECK(c.out().line() == "* guest-2 joined");
    peer.send("\x1b[2Jgotcha\tok\n");
    CHECK(c.out().line() == "guest-2: \\x1b[2Jgotcha\tok");
    c.close_stdin();
    CHECK(c.wait(5000ms) == 0);
}

TEST_CASE("client: an IP literal is checked against the IP SANs") {
    Certs certs;
    Server s = start_tls_server(certs);
    Child ok = run_client("127.0.0.1", s.port, {"--ca", certs / "ca.crt"});
    CHECK(ok.out().line() == "* welcome guest-1 (1 online)");
    ok.close_stdin();
    CHECK(ok.wait(5000ms) == 0);

    // A certificate for localhost only (no IP SAN): 127.0.0.1 does not match.
    certs.issue("dnsonly", "/CN=localhost", "subjectAltName=DNS:localhost");
    Server s2 = start_server("step3_tls/server",
                             {"--cert", certs / "dnsonly.crt", "--key", certs / "dnsonly.key"});
    Child bad = run_client("127.0.0.1", s2.port, {"--ca", certs / "ca.crt"});
    expect_refused(bad, "certificate verify failed: IP address mismatch");
}

TEST_CASE("client: a certificate from another CA is refused with the reason") {
    Certs certs, other;
    Server s = start_tls_server(certs);
    Child c = run_client("localhost", s.port, {"--ca", other / "ca.crt"});
    expect_refused(c, "certificate verify failed: unable to get local issuer certificate");
}

TEST_CASE("client: a certificate for another name is refused: hostname mismatch") {
    Certs certs;
    certs.issue("other", "/CN=other.example", "subjectAltName=DNS:other.example");
    Server s = start_server("step3_tls/server",
                            {"--cert", certs / "other.crt", "--key", certs / "other.key"});
    Child c = run_client("localhost", s.port, {"--ca", certs / "ca.crt"});
    expect_refused(c, "certificate verify failed: hostname mismatch");
}

// Browsers stopped reading the host name from the subject's CN long ago (RFC
// 6125 6.4.4; the CA/Browser Forum requires the name in subjectAltName): a
// certificate that has it only there is for no host at all.
TEST_CASE("client: a certificate whose name is only in the CN (no subjectAltName) is refused") {
    Certs certs;
    certs.issue("cnonly", "/CN=localhost", "");  // our CA, the right name, no SAN
    std::string text;
    REQUIRE(shell("openssl x509 -noout -ext subjectAltName -in " + (certs / "cnonly.crt"), &text) ==
            0);
    REQUIRE(text.find("DNS:") == std::string::npos);
    Server s = start_server("step3_tls/server",
                            {"--cert", certs / "cnonly.crt", "--key", certs / "cnonly.key"});
    Child c = run_client("localhost", s.port, {"--ca", certs / "ca.crt"});
    expect_refused(c, "TLS handshake with localhost:" + std::to_string(s.port) +
                          ": certificate verify failed: hostname mismatch");
}

TEST_CASE("client: an expired certificate is refused: certificate has expired") {
    Certs certs;
    certs.issue("expired", "/CN=localhost", "subjectAltName=DNS:localhost", -1);
    Server s = start_server("step3_tls/server",
                            {"--cert", certs / "expired.crt", "--key", certs / "expired.key"});
    Child c = run_client("localhost", s.port, {"--ca", certs / "ca.crt"});
    expect_refused(c, "certificate verify failed: certificate has expired");
}

TEST_CASE("client: connection refused is one line and exit 1") {
    Certs certs;
    const int port = free_port();
    Child c = run_client("127.0.0.1", port, {"--ca", certs / "ca.crt"});
    CHECK(c.wait(5000ms) == 1);
    CHECK(c.stderr_text().find("Connection refused") != std::string::npos);
}

TEST_CASE("server: a missing certificate or key: the file, the reason, `make certs`, exit 1") {
    Certs certs;
    Child missing({repo_path("step3_tls/server"), "--port", "0", "--bind", "127.0.0.1", "--cert",
                   certs / "nope.crt", "--key", certs / "server.key"});
    CHECK(missing.wait(5000ms) == 1);
    const std::string err = missing.stderr_text();
    CHECK(err.find(certs / "nope.crt") != std::string::npos);
    CHECK(err.find("No such file or directory") != std::string::npos);
    CHECK(err.find("make certs") != std::string::npos);
    CHECK(missing.out().until_eof(500ms).empty());  // never said "listening on"

    Child no_key({repo_path("step3_tls/server"), "--port", "0", "--bind", "127.0.0.1", "--cert",
                  certs / "server.crt", "--key", certs / "nope.key"});
    CHECK(no_key.wait(5000ms) == 1);
    CHECK(no_key.stderr_text().find(certs / "nope.key") != std::string::npos);
    CHECK(no_key.stderr_text().find("make certs") != std::string::npos);
}

TEST_CASE("server: a missing certificate is the error even when the port is taken") {
    // The files are read before the port is bound: fixing the port would only
    // lead to the next error, so the user is told about the files first.
    Certs certs;
    Listener taken;  // holds 127.0.0.1:PORT
    Child c({repo_path("step3_tls/server"), "--port", std::to_string(taken.port()), "--bind",
             "127.0.0.1", "--cert", certs / "nope.crt", "--key", certs / "server.key"});
    CHECK(c.wait(5000ms) == 1);
    const std::string err = c.stderr_text();
    CHECK(err.find(certs / "nope.crt") != std::string::npos);
    CHECK(err.find("make certs") != std::string::npos);
    CHECK(err.find("Address already in use") == std::string::npos);
}

TEST_CASE("server: a key that does not belong to the certificate: exit 1, both files named") {
    Certs certs;
    Child c({repo_path("step3_tls/server"), "--port", "0", "--bind", "127.0.0.1", "--cert",
             certs / "server.crt", "--key", certs / "alice.key"});
    CHECK(c.wait(5000ms) == 1);
    const std::string err = c.stderr_text();
    CHECK(err.find(certs / "alice.key") != std::string::npos);
    CHECK(err.find(certs / "server.crt") != std::string::npos);
    CHECK(err.find("mismatch") != std::string::npos);
    CHECK(err.find("make certs") != std::string::npos);
}

TEST_CASE("server: --require-client-cert without --ca is a usage error (exit 2)") {
    Certs certs;
    Child c({repo_path("step3_tls/server"), "--port", "0", "--cert", certs / "server.crt", "--key",
             certs / "server.key", "--require-client-cert"});
    CHECK(c.wait(5000ms) == 2);
    CHECK(c.stderr_text().find("--ca") != std::string::npos);
}

TEST_CASE("server and client find step3_tls/certs through /proc/self/exe from any directory") {
    // `make step3` made step3_tls/certs; run both from / with no paths given.
    Child server({"bash", "-c",
                  "cd / && exec " + repo_path("step3_tls/server") + " --port 0 --bind 127.0.0.1"});
    auto line = server.out().line(5000ms);
    INFO("server stderr: " << server.stderr_text());
    REQUIRE(line.has_value());
    const std::string port = line->substr(line->rfind(':') + 1);
    Child client(
        {"bash", "-c", "cd / && exec " + repo_path("step3_tls/client") + " localhost " + port},
        SpawnOptions{true, "", "", {}});
    CHECK(client.out().line() == "* welcome guest-1 (1 online)");
    client.close_stdin();
    CHECK(client.wait(5000ms) == 0);
}

TEST_CASE("mutual TLS: alice's certificate makes her nick; no certificate, no entry") {
    Certs certs;
    Server s = start_tls_server(certs, {"--ca", certs / "ca.crt", "--require-client-cert"});

    TlsOptions alice = with_ca(certs);
    alice.cert = certs / "alice.crt";
    alice.key = certs / "alice.key";
    TlsConn a(s.port, alice);
    INFO(a.error());
    REQUIRE(a.ok());
    CHECK(a.line() == "* welcome alice (1 online)");

    // Without a certificate: TLS 1.3 finishes the client's side first, then
    // the server's alert arrives; no welcome, ever.
    TlsConn anonymous(s.port, with_ca(certs));
    CHECK_FALSE(anonymous.line(2000ms).has_value());
    CHECK(anonymous.eof());
    CHECK(anonymous.error().find("certificate required") != std::string::npos);

    // Our client says why and exits 1.
    Child c = run_client("localhost", s.port, {"--ca", certs / "ca.crt"});
    CHECK(c.wait(5000ms) == 1);
    CHECK(c.stderr_text().find("certificate required") != std::string::npos);

    // And with the certificate it chats as alice's namesake... taken: error + close.
    Child dup = run_client(
        "localhost", s.port,
        {"--ca", certs / "ca.crt", "--cert", certs / "alice.crt", "--key", certs / "alice.key"});
    CHECK(dup.out().line() == "* error: nick alice is taken");
    CHECK(dup.wait(5000ms) == 0);
    CHECK(a.available(300ms).empty());  // alice saw nothing of it
}

TEST_CASE("mutual TLS: a CN that is not a valid nick gets an error and a close") {
    Certs certs;
    certs.issue("spaced", "/CN=bad name", "extendedKeyUsage=clientAuth");
    Server s = start_tls_server(certs, {"--ca", certs / "ca.crt", "--require-client-cert"});
    TlsOptions o = with_ca(certs);
    o.cert = certs / "spaced.crt";
    o.key = certs / "spaced.key";
    TlsConn c(s.port, o);
    REQUIRE(c.ok());
    const auto line = c.line();
    REQUIRE(line.has_value());
    CHECK(line->rfind("* error: ", 0) == 0);
    CHECK(line->find("bad name") != std::string::npos);
    c.until_eof();
    CHECK(c.eof());
}

TEST_CASE("--ca alone does not name clients: alice is a guest") {
    Certs certs;
    Server s = start_tls_server(certs, {"--ca", certs / "ca.crt"});
    TlsOptions alice = with_ca(certs);
    alice.cert = certs / "alice.crt";
    alice.key = certs / "alice.key";
    TlsConn a(s.port, alice);
    REQUIRE(a.ok());
    CHECK(a.line() == "* welcome guest-1 (1 online)");
    TlsConn anonymous(s.port, with_ca(certs));
    REQUIRE(anonymous.ok());
    CHECK(anonymous.line() == "* welcome guest-2 (2 online)");
}

TEST_CASE("SIGHUP: new connections get the new certificate, old ones keep chatting") {
    Certs certs, next;
    TempDir live;
    const std::string cert = live / "server.crt", key = live / "server.key";
    write_file(cert, read_file(certs / "server.crt"));
    write_file(key, read_file(certs / "server.key"));
    Server s = start_server("step3_tls/server", {"--cert", cert, "--key", key});

    TlsConn old_client(s.port, with_ca(certs));
    REQUIRE(old_client.ok());
    REQUIRE(old_client.line() == "* welcome guest-1 (1 online)");

    // The files now hold a certificate from another CA.
    write_file(cert, read_file(next / "server.crt"));
    write_file(key, read_file(next / "server.key"));
    s.proc.signal(SIGHUP);
    REQUIRE(eventually(
        [&] { return s.proc.stderr_text().find("reloaded certificate") != std::string::npos; }));

    TlsConn fresh(s.port, with_ca(next));
    INFO(fresh.error());
    REQUIRE(fresh.ok());
    CHECK(fresh.line() == "* welcome guest-2 (2 online)");
    TlsConn stale(s.port, with_ca(certs));
    CHECK_FALSE(stale.ok());
    CHECK(stale.error().find("certificate verify failed") != std::string::npos);

    // The old connection was made with the old certificate and still works.
    CHECK(old_client.line() == "* guest-2 joined");
    old_client.send("still here\n");
    CHECK(fresh.line() == "guest-1: still here");

    // Broken files: logged, and the server keeps the certificate it has.
    write_file(cert, "not a certificate\n");
    s.proc.signal(SIGHUP);
    REQUIRE(eventually([&] {
        return s.proc.stderr_text().find("keeping the old certificate") != std::string::npos;
    }));
    CHECK(s.proc.stderr_text().find(cert) != std::string::npos);
    TlsConn after(s.port, with_ca(next));
    INFO(after.error());
    CHECK(after.ok());
    CHECK(after.line() == "* welcome guest-3 (3 online)");
}

TEST_CASE(
    "SIGHUP after --user dropped root: the key is unreadable, the old one stays, the log says "
    "why") {
    if (::geteuid() != 0) return;  // --user needs root; nothing to check otherwise
    Certs certs;                   // in a 0700 directory of root's
    Server s = start_tls_server(certs, {"--user", "nobody"});
    TlsConn before(s.port, with_ca(certs));
    REQUIRE(before.ok());
    REQUIRE(before.line() == "* welcome guest-1 (1 online)");
    s.proc.signal(SIGHUP);
    REQUIRE(eventually([&] {
        return s.proc.stderr_text().find("keeping the old certificate") != std::string::npos;
    }));
    CHECK(s.proc.stderr_text().find("readable by the user the server runs as") !=
          std::string::npos);
    TlsConn after(s.port, with_ca(certs));
    REQUIRE(after.ok());
    CHECK(after.line() == "* welcome guest-2 (2 online)");
}

TEST_CASE(
    "client: --timeout bounds the TLS handshake with a server that accepts and never answers") {
    Listener silent;  // accepts, reads nothing, says nothing
    const auto start = std::chrono::steady_clock::now();
    Child c = run_client("127.0.0.1", silent.port(), {"--timeout", "1"});
    common::Fd accepted = silent.accept();
    REQUIRE(accepted);
    CHECK(c.wait(10000ms) == 1);
    const auto took = std::chrono::steady_clock::now() - start;
    CHECK(c.stderr_text() == "TLS handshake with 127.0.0.1:" + std::to_string(silent.port()) +
                                 ": timed out after 1 s\n");
    CHECK(took >= 900ms);
    CHECK(took < 5000ms);
    CHECK(c.out().until_eof(1000ms).empty());
}
