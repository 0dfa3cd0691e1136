#include "log.hpp"

#include <fcntl.h>
#include <syslog.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <utility>

#include "error.hpp"

namespace common {
namespace {

std::string timestamp() {
    using namespace std::chrono;
    const auto now = system_clock::now();
    const std::time_t secs = system_clock::to_time_t(now);
    const auto millis = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    ::gmtime_r(&secs, &tm);
    char buf[32];
    const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    char frac[8];
    std::snprintf(frac, sizeof frac, ".%03dZ", static_cast<int>(millis));
    return std::string(buf, n) + frac;
}

}  // namespace

void Logger::open_file(const std::string& path) {
    // Absolute, so that SIGHUP reopens the same path after a daemon's chdir("/").
    std::error_code ignored;
    const auto absolute = std::filesystem::absolute(path, ignored);
    path_ = absolute.empty() ? path : absolute.string();
    file_.reset(
        check(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640), "open", path));
}

void Logger::use_syslog(std::string ident) {
    ident_ = std::move(ident);
    // LOG_NDELAY: connect to /dev/log now, not at the first line.
    ::openlog(ident_.c_str(), LOG_PID | LOG_NDELAY, LOG_DAEMON);
    syslog_ = true;
}

void Logger::reopen() {
    if (path_.empty()) return;
    int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        info("reopen ", path_, ": ", std::generic_category().message(errno),
             " (still writing to the old file)");
        return;
    }
    file_.reset(fd);
    info("log file reopened");
}

void Logger::write(std::string_view line) {
    if (syslog_ && !file_) {
        ::syslog(LOG_INFO, "%.*s", static_cast<int>(line.size()), line.data());
        return;
    }
    std::string out = timestamp();
    out += ' ';
    out += line;
    out += '\n';
    const int fd = file_ ? file_.get() : STDERR_FILENO;
    // One write per line; a failing log must never stop the server.
    [[maybe_unused]] ssize_t ignored = ::write(fd, out.data(), out.size());
}

void Logger::fatal(std::string_view message) {
    std::string line(message);
    line += '\n';
    [[maybe_unused]] ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
    if (file_ || syslog_) info("fatal: ", message);
}

}  // namespace common
