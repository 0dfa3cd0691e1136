// options.hpp: the command line every server and client shares (docs/protocol.md#the-command-line).
//
// Bad usage prints the usage on stderr and exits 2; -h/--help prints it on
// stdout and exits 0. A stage adds its own options through ExtraOption, so the
// shared ones are parsed and documented in exactly one place.
#pragma once

#include <functional>
#include <span>
#include <string>
#include <string_view>

namespace common {

struct ServerOptions {
    std::string port;              // -p/--port; "0" = any free port
    std::string bind = "0.0.0.0";  // -b/--bind
    bool daemon = false;           // -d/--daemon
    std::string pidfile;           // --pidfile PATH
    std::string user;              // --user NAME
    std::string log_file;          // --log-file PATH
    bool explain = false;          // --explain
};

struct ClientOptions {
    std::string host = "localhost";
    std::string port;
    bool explain = false;
    long timeout = 10;  // --timeout SECONDS: the most connect (and a TLS handshake) may take
};

// An option a stage adds. `apply` gets the argument ("" for a flag) and
// returns an error text for a bad value, or "" when it is fine.
struct ExtraOption {
    const char* name;      // long name, without "--"
    const char* arg_name;  // e.g. "N" or "PATH"; nullptr for a flag
    const char* help;
    std::function<std::string(std::string_view)> apply;
};

ServerOptions parse_server_options(int argc, char** argv, std::string_view default_port,
                                   std::span<const ExtraOption> extras = {});
// `timeout_bounds` names what --timeout bounds in the usage text.
ClientOptions parse_client_options(int argc, char** argv, std::string_view default_port,
                                   std::span<const ExtraOption> extras = {},
                                   std::string_view timeout_bounds = "connect");

// "" when `text` is a port number 0-65535, else the reason.
std::string check_port(std::string_view text);

// Parse a whole decimal number in [min, max]; "" on success, else the reason.
std::string parse_number(std::string_view text, long min, long max, long& out);

}  // namespace common
