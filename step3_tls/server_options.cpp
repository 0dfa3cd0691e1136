// step3_tls/server_options.cpp: stage 3's command line (see server_options.hpp).
#include "server_options.hpp"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

common::ServerOptions parse_tls_server_options(int argc, char** argv, long max_clients_limit,
                                               long& max_clients, TlsOptions& tls_opts) {
    // Defaults next to the binary: step3_tls/certs/ (see make-certs.sh).
    tls_opts.files.cert = tls::default_cert_path("server.crt");
    tls_opts.files.key = tls::default_cert_path("server.key");
    auto path = [](std::string& out) {
        return [&out](std::string_view text) -> std::string {
            out = text;
            return text.empty() ? "empty path" : "";
        };
    };
    const common::ExtraOption extras[] = {
        {"max-clients", "N",
         "clients at once, TLS handshakes included (default 1000, at most 1008)",
         [&](std::string_view text) {
             return common::parse_number(text, 1, max_clients_limit, max_clients);
         }},
        {"cert", "PATH", "certificate chain, PEM (default step3_tls/certs/server.crt)",
         path(tls_opts.files.cert)},
        {"key", "PATH", "its private key, PEM (default step3_tls/certs/server.key)",
         path(tls_opts.files.key)},
        {"ca", "PATH", "CA that signs client certificates (for --require-client-cert)",
         path(tls_opts.files.ca)},
        {"require-client-cert", nullptr,
         "mutual TLS: clients need a certificate; its CN is the nick",
         [&](std::string_view) -> std::string {
             tls_opts.files.require_client_cert = true;
             return "";
         }},
        {"handshake-timeout", "N", "drop a client whose TLS handshake takes over N s (default 10)",
         [&](std::string_view text) {
             long seconds = 0;
             std::string err = common::parse_number(text, 1, 3600, seconds);
             tls_opts.handshake_timeout = std::chrono::seconds(seconds);
             return err;
         }},
    };
    common::ServerOptions opts = common::parse_server_options(argc, argv, "7003", extras);
    for (std::string* file : {&tls_opts.files.cert, &tls_opts.files.key, &tls_opts.files.ca}) {
        if (!file->empty()) *file = std::filesystem::absolute(*file).string();
    }
    if (tls_opts.files.require_client_cert && tls_opts.files.ca.empty()) {
        std::fprintf(
            stderr,
            "%s: --require-client-cert needs --ca PATH (the CA that signs client certificates)\n",
            argc > 0 ? argv[0] : "server");
        std::exit(2);
    }
    return opts;
}
