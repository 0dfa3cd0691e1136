// Stage 3 interop: openssl s_client and ncat --ssl, each verifying the server
// against the CA, chat with our own client through our server.
#include <string>

#include "../../common/net.hpp"
#include "doctest.h"
#include "harness.hpp"
#include "tls_conn.hpp"

using namespace test;

namespace {

Child our_client(const Certs& certs, int port) {
    return Child({repo_path("step3_tls/client"), "localhost", std::to_string(port), "--ca",
                  certs / "ca.crt"},
                 SpawnOptions{true, "", "", {}});
}

}  // namespace

TEST_CASE("interop: openssl s_client -verify_return_error chats with our client") {
    Certs certs;
    Server s = start_tls_server(certs);
    Child ours = our_client(certs, s.port);
    REQUIRE(ours.out().line() == "* welcome guest-1 (1 online)");

    // -quiet: only the application data on stdout; -verify_return_error: a
    // bad chain or name would end the handshake; -nocommands: a line "Q"
    // is chat text, not a command.
    Child sc({"openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(s.port),
              "-servername", "localhost", "-verify_hostname", "localhost", "-CAfile",
              certs / "ca.crt", "-verify_return_error", "-quiet", "-nocommands"},
             SpawnOptions{true, "", "", {}});
    INFO("s_client stderr: " << sc.stderr_text());
    REQUIRE(sc.out().line() == "* welcome guest-2 (2 online)");
    CHECK(ours.out().line() == "* guest-2 joined");

    common::send_all(sc.stdin_fd(), "hello from s_client\n");
    CHECK(ours.out().line() == "guest-2: hello from s_client");
    common::send_all(ours.stdin_fd(), "hello from our client\n");
    CHECK(sc.out().line() == "guest-1: hello from our client");

    common::send_all(sc.stdin_fd(), "/quit\n");
    CHECK(sc.out().line() == "* bye");
    CHECK(ours.out().line() == "* guest-2 left");
    CHECK(sc.wait(5000ms) == 0);  // s_client exits once the server has closed
    ours.close_stdin();
    CHECK(ours.wait(5000ms) == 0);
}

TEST_CASE("interop: ncat --ssl --ssl-verify chats with our client") {
    Certs certs;
    Server s = start_tls_server(certs);
    Child ours = our_client(certs, s.port);
    REQUIRE(ours.out().line() == "* welcome guest-1 (1 online)");

    Child nc({"ncat", "--ssl", "--ssl-verify", "--ssl-trustfile", certs / "ca.crt", "localhost",
              std::to_string(s.port)},
             SpawnOptions{true, "", "", {}});
    INFO("ncat stderr: " << nc.stderr_text());
    REQUIRE(nc.out().line() == "* welcome guest-2 (2 online)");
    CHECK(ours.out().line() == "* guest-2 joined");

    common::send_all(nc.stdin_fd(), "hello from ncat\n");
    CHECK(ours.out().line() == "guest-2: hello from ncat");
    common::send_all(ours.stdin_fd(), "hello back\n");
    CHECK(nc.out().line() == "guest-1: hello back");

    nc.close_stdin();  // ncat's EOF: the server flushes, closes; ncat exits
    CHECK(ours.out().line() == "* guest-2 left");
    CHECK(nc.wait(5000ms) == 0);
    ours.close_stdin();
    CHECK(ours.wait(5000ms) == 0);
}

TEST_CASE("interop: our client refuses an openssl s_server whose certificate names another host") {
    Certs certs;
    certs.issue("other", "/CN=other.example", "subjectAltName=DNS:other.example");
    const int port = free_port();
    Child server({"openssl", "s_server", "-accept", "127.0.0.1:" + std::to_string(port), "-cert",
                  certs / "other.crt", "-key", certs / "other.key", "-quiet"},
                 SpawnOptions{true, "", "", {}});
    REQUIRE(eventually([&] { return is_listening(port); }, 3000ms));
    Child ours({repo_path("step3_tls/client"), "127.0.0.1", std::to_string(port), "--ca",
                certs / "ca.crt"},
               SpawnOptions{true, "", "", {}});
    CHECK(ours.wait(5000ms) == 1);
    CHECK(ours.stderr_text().find("certificate verify failed: IP address mismatch") !=
          std::string::npos);
}
