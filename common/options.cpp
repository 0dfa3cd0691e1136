#include "options.hpp"

#include <getopt.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <vector>

namespace common {
namespace {

std::string program_name(const char* argv0) {
    std::string_view name = argv0 ? argv0 : "program";
    auto slash = name.rfind('/');
    return std::string(slash == std::string_view::npos ? name : name.substr(slash + 1));
}

void print_extras(std::ostream& out, std::span<const ExtraOption> extras) {
    for (const auto& e : extras) {
        std::string left = std::string("      --") + e.name;
        if (e.arg_name) left += std::string(" ") + e.arg_name;
        left.resize(std::max<std::size_t>(left.size() + 1, 30), ' ');  // the help column
        out << left << e.help << '\n';
    }
}

void server_usage(std::ostream& out, const std::string& prog, std::string_view default_port,
                  std::span<const ExtraOption> extras) {
    out << "usage: " << prog << " [options]\n"
        << "  -p, --port PORT             TCP port to listen on; 0 = any free port (default "
        << default_port << ")\n"
        << "  -b, --bind ADDR             address to listen on, IPv4 or IPv6 (default 0.0.0.0)\n"
        << "  -d, --daemon                run in the background (see docs/daemon.md)\n"
        << "      --pidfile PATH          write and lock a pid file\n"
        << "      --user NAME             when started as root: drop to NAME after binding\n"
        << "      --log-file PATH         append logs to PATH (default stderr, syslog when "
           "detached)\n"
        << "      --explain               narrate each socket call and what TCP does\n";
    print_extras(out, extras);
    out << "  -h, --help                  show this help\n";
}

void client_usage(std::ostream& out, const std::string& prog, std::string_view default_port,
                  std::span<const ExtraOption> extras, std::string_view timeout_bounds) {
    out << "usage: " << prog << " [options] [HOST [PORT]]\n"
        << "  HOST defaults to localhost, PORT to " << default_port << "\n"
        << "      --timeout SECONDS       give up on " << timeout_bounds
        << " after SECONDS (default 10)\n"
        << "      --explain               narrate each socket call and what TCP does\n";
    print_extras(out, extras);
    out << "  -h, --help                  show this help\n";
}

// Shared getopt_long loop. `on_option` handles the caller's own short/long
// codes and returns an error text ("" = fine).
template <typename Usage, typename OnOption>
void run_getopt(int argc, char** argv, const std::string& prog, const char* shortopts,
                std::vector<option> longopts, std::span<const ExtraOption> extras, Usage usage,
                OnOption on_option) {
    constexpr int kExtraBase = 1000;
    for (std::size_t i = 0; i < extras.size(); ++i) {
        longopts.push_back({extras[i].name, extras[i].arg_name ? required_argument : no_argument,
                            nullptr, kExtraBase + static_cast<int>(i)});
    }
    longopts.push_back({nullptr, 0, nullptr, 0});

    auto fail = [&](const std::string& message) {
        if (!message.empty()) std::cerr << prog << ": " << message << '\n';
        usage(std::cerr);
        std::exit(2);
    };
    optind = 0;  // 0, not 1: makes glibc reset its state, so parsing twice works
    int c;
    while ((c = ::getopt_long(argc, argv, shortopts, longopts.data(), nullptr)) != -1) {
        const std::string_view arg = optarg ? optarg : "";
        if (c == 'h') {
            usage(std::cout);
            std::exit(0);
        } else if (c == '?' || c == ':') {
            fail("");  // getopt_long already said what was wrong
        } else if (c >= kExtraBase) {
            const auto& extra = extras[static_cast<std::size_t>(c - kExtraBase)];
            if (std::string err = extra.apply(arg); !err.empty()) {
                fail("--" + std::string(extra.name) + ": " + err);
            }
        } else if (std::string err = on_option(c, arg); !err.empty()) {
            fail(err);
        }
    }
}

enum LongOnly { kPidfile = 500, kUser, kLogFile, kExplain, kTimeout };

}  // namespace

std::string parse_number(std::string_view text, long min, long max, long& out) {
    long value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
        return "'" + std::string(text) + "' is not a number";
    }
    if (value < min || value > max) {
        return "'" + std::string(text) + "' is out of range (" + std::to_string(min) + "-" +
               std::to_string(max) + ")";
    }
    out = value;
    return "";
}

std::string check_port(std::string_view text) {
    long ignored = 0;
    std::string err = parse_number(text, 0, 65535, ignored);
    return err.empty() ? "" : "invalid port: " + err;
}

ServerOptions parse_server_options(int argc, char** argv, std::string_view default_port,
                                   std::span<const ExtraOption> extras) {
    ServerOptions opts;
    opts.port = default_port;
    const std::string prog = program_name(argc > 0 ? argv[0] : nullptr);
    std::vector<option> longopts = {
        {"port", required_argument, nullptr, 'p'},
        {"bind", required_argument, nullptr, 'b'},
        {"daemon", no_argument, nullptr, 'd'},
        {"help", no_argument, nullptr, 'h'},
        {"pidfile", required_argument, nullptr, kPidfile},
        {"user", required_argument, nullptr, kUser},
        {"log-file", required_argument, nullptr, kLogFile},
        {"explain", no_argument, nullptr, kExplain},
    };
    auto usage = [&](std::ostream& out) { server_usage(out, prog, default_port, extras); };
    run_getopt(argc, argv, prog, "+p:b:dh", longopts, extras, usage,
               [&](int c, std::string_view arg) -> std::string {
                   switch (c) {
                       case 'p':
                           opts.port = arg;
                           return check_port(arg);
                       case 'b':
                           opts.bind = arg;
                           return arg.empty() ? "empty --bind address" : "";
                       case 'd':
                           opts.daemon = true;
                           return "";
                       case kPidfile:
                           opts.pidfile = arg;
                           return "";
                       case kUser:
                           opts.user = arg;
                           return "";
                       case kLogFile:
                           opts.log_file = arg;
                           return "";
                       case kExplain:
                           opts.explain = true;
                           return "";
                   }
                   return "unexpected option";
               });
    if (optind < argc) {
        std::cerr << prog << ": unexpected argument '" << argv[optind] << "'\n";
        usage(std::cerr);
        std::exit(2);
    }
    return opts;
}

ClientOptions parse_client_options(int argc, char** argv, std::string_view default_port,
                                   std::span<const ExtraOption> extras,
                                   std::string_view timeout_bounds) {
    ClientOptions opts;
    opts.port = default_port;
    const std::string prog = program_name(argc > 0 ? argv[0] : nullptr);
    std::vector<option> longopts = {
        {"help", no_argument, nullptr, 'h'},
        {"explain", no_argument, nullptr, kExplain},
        {"timeout", required_argument, nullptr, kTimeout},
    };
    auto usage = [&](std::ostream& out) {
        client_usage(out, prog, default_port, extras, timeout_bounds);
    };
    // No leading '+': options may come after HOST and PORT too.
    run_getopt(argc, argv, prog, "h", longopts, extras, usage,
               [&](int c, std::string_view arg) -> std::string {
                   if (c == kExplain) {
                       opts.explain = true;
                       return "";
                   }
                   if (c == kTimeout) {
                       std::string err = parse_number(arg, 1, 3600, opts.timeout);
                       return err.empty() ? "" : "--timeout: " + err;
                   }
                   return "unexpected option";
               });
    const int positional = argc - optind;
    if (positional > 2) {
        std::cerr << prog << ": too many arguments\n";
        usage(std::cerr);
        std::exit(2);
    }
    if (positional >= 1) opts.host = argv[optind];
    if (positional == 2) {
        opts.port = argv[optind + 1];
        if (std::string err = check_port(opts.port); !err.empty()) {
            std::cerr << prog << ": " << err << '\n';
            usage(std::cerr);
            std::exit(2);
        }
    }
    return opts;
}

}  // namespace common
