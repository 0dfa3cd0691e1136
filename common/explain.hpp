// explain.hpp: --explain narrates each socket call and what TCP does then.
//
// Narration is a call placed next to the call it explains:
//     int fd = ::accept4(...);          // docs/01-echo.md#accept
//     explain.accepted(listener, fd, peer);
// When --explain is off every method returns at once: nothing is computed
// and nothing is printed. Lines go to stderr and start with "explain: ".
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <map>
#include <string>
#include <string_view>

namespace common {

class Explain {
  public:
    explicit Explain(bool enabled) : enabled_(enabled) {}
    bool enabled() const { return enabled_; }

    void socket(int fd, int family);
    void setsockopt(int fd, std::string_view option);
    void bind(int fd, std::string_view address);
    void listen(int fd, int backlog);
    void accepted(int listen_fd, int fd, std::string_view peer);
    void connected(int fd, std::string_view peer);
    void sent(int fd, std::size_t bytes);
    void received(int fd, std::size_t bytes);  // 0 bytes = the peer's FIN
    void shutdown_write(int fd);
    void closing(int fd);                         // call before close()
    void woke(std::string_view call, int ready);  // select()/poll() returned
    void forked(pid_t child);
    // Anything else worth a line: `text` then the docs link.
    void note(std::string_view text, std::string_view docs_anchor);

    // One line: "explain: <text> [docs/<anchor>]".
    void line(std::string_view text, std::string_view docs_anchor);

  private:
    void snapshot(int fd, std::string_view when);  // TCP_INFO in words

    bool enabled_;
    std::map<int, unsigned> sends_;     // per descriptor: how many send()s so far
    std::map<int, unsigned> receives_;  // and recv()s, to explain only the first in full
};

}  // namespace common
