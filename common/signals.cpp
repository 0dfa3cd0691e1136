#include "signals.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>

#include "error.hpp"
#include "net.hpp"

namespace common {
namespace {

// The only global mutable state in the project: what a signal handler may touch.
volatile sig_atomic_t g_stop = 0;
volatile sig_atomic_t g_reload = 0;
volatile sig_atomic_t g_wake_fd = -1;

extern "C" void on_signal(int signo) {
    const int saved_errno = errno;  // write() below may change errno
    if (signo == SIGHUP) {
        g_reload = 1;
    } else {
        g_stop = 1;
    }
    if (g_wake_fd >= 0) {
        const char byte = 1;
        [[maybe_unused]] ssize_t ignored = ::write(g_wake_fd, &byte, 1);  // async-signal-safe
    }
    errno = saved_errno;
}

void install(int signo, void (*handler)(int)) {
    struct sigaction sa {};
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: blocking calls return EINTR and we look at the flags
    check(::sigaction(signo, &sa, nullptr), "sigaction");
}

}  // namespace

Signals::Signals() {
    int fds[2];
    check(::pipe2(fds, O_CLOEXEC | O_NONBLOCK), "pipe2");
    read_end_.reset(fds[0]);
    write_end_.reset(fds[1]);
    g_stop = 0;
    g_reload = 0;
    g_wake_fd = write_end_.get();
    install(SIGINT, on_signal);
    install(SIGTERM, on_signal);
    install(SIGHUP, on_signal);
    ignore_sigpipe();
}

Signals::~Signals() {
    restore_defaults();
    g_wake_fd = -1;
}

void Signals::drain() {
    char buf[64];
    while (::read(read_end_.get(), buf, sizeof buf) > 0) {
    }
}

bool Signals::stop_requested() const {
    return g_stop != 0;
}

bool Signals::take_reload_request() {
    if (g_reload == 0) return false;
    g_reload = 0;
    return true;
}

void Signals::restore_defaults() {
    struct sigaction sa {};
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
    ::sigaction(SIGHUP, &sa, nullptr);
}

}  // namespace common
