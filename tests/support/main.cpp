// tests/support/main.cpp: doctest's main, with a watchdog.
//
// Every suite is bounded: after TEST_TIMEOUT seconds (default 300) the whole
// suite stops with a message, and the processes it started die with it
// (they are spawned with PR_SET_PDEATHSIG).
#define DOCTEST_CONFIG_IMPLEMENT
#include <signal.h>
#include <unistd.h>

#include <cstdlib>

#include "doctest.h"

namespace {
extern "C" void on_alarm(int) {
    const char msg[] = "\n[watchdog] suite exceeded TEST_TIMEOUT; stopping\n";
    [[maybe_unused]] ssize_t ignored = ::write(STDERR_FILENO, msg, sizeof msg - 1);
    ::_exit(124);
}
}  // namespace

int main(int argc, char** argv) {
    const char* env = std::getenv("TEST_TIMEOUT");
    const unsigned timeout = env ? static_cast<unsigned>(std::atoi(env)) : 300;
    ::signal(SIGALRM, on_alarm);
    ::alarm(timeout);
    ::signal(SIGPIPE, SIG_IGN);  // a test writing to a closed socket gets EPIPE

    doctest::Context context;
    context.applyCommandLine(argc, argv);
    return context.run();
}
