// log.hpp: one line per event, with a timestamp.
//
// Logs go to stderr in the foreground, to --log-file when given, and to
// syslog when a daemon has no terminal. Each line is written with a single
// write(2), so lines from several processes (server_fork) never interleave.
#pragma once

#include <sstream>
#include <string>
#include <string_view>

#include "fd.hpp"

namespace common {

class Logger {
  public:
    Logger() = default;

    // Append to `path` from now on (O_APPEND, created 0640); throws
    // std::system_error "open PATH" when it cannot.
    void open_file(const std::string& path);
    // Send lines to syslog (LOG_DAEMON, with the pid) unless a file was given.
    // `ident` names us in each line, e.g. "step1_echo/server[4242]: ...".
    void use_syslog(std::string ident);
    // SIGHUP: reopen --log-file so logrotate can move the old one away.
    void reopen();

    template <typename... Parts>
    void info(const Parts&... parts) {
        std::ostringstream line;
        (line << ... << parts);
        write(line.str());
    }
    void write(std::string_view line);

    // The error that ends the program: on stderr as it is (the user at the
    // terminal sees "bind 0.0.0.0:7001: Address already in use"), and also
    // in the log when that is a file or syslog, where a daemon's errors go
    // once its stderr is /dev/null.
    void fatal(std::string_view message);

  private:
    std::string path_;
    std::string ident_;  // openlog() keeps the pointer, so we keep the string
    Fd file_;
    bool syslog_ = false;
};

}  // namespace common
