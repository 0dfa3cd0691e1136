#include "daemon.hpp"

#include <unistd.h>

#include <cstdio>
#include <stdexcept>

namespace common {

Service::~Service() {
    if (!pidfile_.empty()) ::unlink(pidfile_.c_str());
}

Service start_service(const ServerOptions& opts, Logger& log, std::string_view listening_on) {
    if (opts.daemon || !opts.pidfile.empty() || !opts.user.empty()) {
        throw std::runtime_error("--daemon, --pidfile and --user are not available yet");
    }
    std::printf("listening on %.*s\n", static_cast<int>(listening_on.size()), listening_on.data());
    std::fflush(stdout);
    log.info("listening on ", listening_on);
    return Service();
}

}  // namespace common
