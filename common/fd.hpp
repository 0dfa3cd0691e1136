// fd.hpp: a file descriptor that closes itself.
//
// A descriptor (디스크립터) is the small integer the kernel hands back from
// socket(), accept() or open(); it names the kernel's control information for
// that socket. Forgetting to close() one leaks it until the process runs out
// (EMFILE). Fd owns exactly one descriptor and closes it when it goes out of
// scope, so every early return and every exception closes it too.
#pragma once

#include <unistd.h>

#include <utility>

namespace common {

class Fd {
  public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() { reset(); }

    Fd(const Fd&) = delete;  // two owners would close it twice
    Fd& operator=(const Fd&) = delete;
    Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    Fd& operator=(Fd&& other) noexcept {
        if (this != &other) reset(std::exchange(other.fd_, -1));
        return *this;
    }

    int get() const { return fd_; }
    explicit operator bool() const { return fd_ >= 0; }

    // Give up ownership without closing (for example to hand it to a child).
    int release() { return std::exchange(fd_, -1); }

    // Close the current descriptor (if any) and own `fd` instead. close() is
    // not retried on EINTR: on Linux the descriptor is gone either way.
    void reset(int fd = -1) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }

  private:
    int fd_ = -1;
};

}  // namespace common
