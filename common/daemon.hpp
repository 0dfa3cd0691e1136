// daemon.hpp: from "the socket is listening" to "serving".
//
// Every server calls start_service() once its listening socket is ready. It
// prints the one stdout line SPEC.md promises, `listening on HOST:PORT`, and
// (docs/daemon.md) detaches with --daemon, writes and locks --pidfile, and
// drops to --user. The returned Service removes the pid file when it ends.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "log.hpp"
#include "options.hpp"

namespace common {

class Service {
  public:
    Service() = default;
    explicit Service(std::string pidfile) : pidfile_(std::move(pidfile)) {}
    ~Service();
    Service(Service&& other) noexcept : pidfile_(std::exchange(other.pidfile_, {})) {}
    Service& operator=(Service&&) = delete;
    Service(const Service&) = delete;

  private:
    std::string pidfile_;
};

// Throws std::system_error or std::runtime_error with a message for the user.
Service start_service(const ServerOptions& opts, Logger& log, std::string_view listening_on);

}  // namespace common
