// daemon.hpp: from "the socket is listening" to "serving".
//
// Every server calls start_service() once its listening socket is ready (and,
// in stage 3, once its keys are loaded: privileges are dropped in here). It
// prints the one stdout line docs/protocol.md#the-listening-line promises,
// `listening on HOST:PORT`, and, as the options ask (docs/daemon.md):
//
//   --daemon    detach: fork, setsid, fork, chdir /, umask 027, close the
//               descriptors inherited from whoever started us, stdio on
//               /dev/null, logs to syslog (or --log-file). The process that was
//               started waits on a pipe until the daemon says "ready" (or sends
//               its error), prints `listening on`, and exits 0 (or 1).
//   --pidfile   create, lock (flock) and fill the pid file in the process that
//               serves; "already running (pid N)" when another one holds it.
//   --user      as root: setgroups, setgid, setuid to NAME, after the pid file.
//
// The one rule for the servers: every descriptor a server opens must be
// close-on-exec (SOCK_CLOEXEC, O_CLOEXEC, accept4(..., SOCK_CLOEXEC)). A
// descriptor that came in through execve() cannot have that flag (it would
// have been closed), so --daemon keeps exactly the close-on-exec descriptors
// and closes the rest. docs/daemon.md#6-close-what-we-inherited
//
// The returned Service removes the pid file when it ends, in the process that
// created it only (a server_fork child leaving main() does not remove it).
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "fd.hpp"
#include "log.hpp"
#include "options.hpp"

namespace common {

class Service {
  public:
    Service() = default;
    Service(std::string pidfile, Fd locked);
    ~Service();
    Service(Service&& other) noexcept;
    Service& operator=(Service&&) = delete;
    Service(const Service&) = delete;

  private:
    std::string pidfile_;
    Fd pidfile_fd_;    // holds the flock for the life of the server
    pid_t owner_ = 0;  // the process that wrote the pid file
};

// Throws std::system_error or std::runtime_error with a message for the user
// (e.g. "--user nobdy: no such user"). With --daemon it returns only in the
// daemon; the starting process exits inside it (0 once the daemon is ready,
// 1 with the daemon's error on stderr).
Service start_service(const ServerOptions& opts, Logger& log, std::string_view listening_on);

// Throws the error start_service() would give for --user (no such user, or
// not root), for a server that must know before it reads root-only files.
void check_user_option(const ServerOptions& opts);

}  // namespace common
