// signals.hpp: SIGINT/SIGTERM/SIGHUP turned into something poll() can see.
//
// A signal handler may do almost nothing safely. Ours only sets a flag and
// writes one byte into a pipe (the "self-pipe trick"). The server puts the
// pipe's read end in the same poll()/select() as its sockets, so a signal
// wakes the event loop like any other event, and the real work (closing
// clients, flushing queues, reopening the log) happens in normal code.
#pragma once

#include "fd.hpp"

namespace common {

class Signals {
  public:
    // Installs the handlers (without SA_RESTART, so a blocking call returns
    // EINTR) and ignores SIGPIPE. Create one, in main, before any socket.
    Signals();
    ~Signals();
    Signals(const Signals&) = delete;
    Signals& operator=(const Signals&) = delete;

    // Readable after a signal arrived; put it in poll/select.
    int fd() const { return read_end_.get(); }

    // Empty the pipe. Then ask what arrived.
    void drain();
    bool stop_requested() const;  // SIGINT or SIGTERM
    bool take_reload_request();   // SIGHUP since the last call?

    // For a forked child that must not share the parent's handlers.
    static void restore_defaults();

  private:
    Fd read_end_;
    Fd write_end_;
};

}  // namespace common
