// step3_tls/server_options.hpp: stage 3's command line, parsed.
//
// The options every server has (common/options.hpp) plus --max-clients and
// the TLS ones: --cert, --key, --ca, --require-client-cert,
// --handshake-timeout. Only parsing lives here; server.cpp uses them.
#pragma once

#include <chrono>

#include "../common/options.hpp"
#include "tls.hpp"

// What --cert, --key, --ca, --require-client-cert, --handshake-timeout say.
struct TlsOptions {
    tls::ServerFiles files;
    std::chrono::seconds handshake_timeout{10};
};

// Parse argv (bad usage: usage on stderr, exit 2). The certificate paths are
// made absolute: SIGHUP reads the files again, maybe after --daemon's chdir("/").
common::ServerOptions parse_tls_server_options(int argc, char** argv, long max_clients_limit,
                                               long& max_clients, TlsOptions& tls_opts);
