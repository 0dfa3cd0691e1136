// step2_multiclient/listener.hpp: steps 1-4 of stage 1, the one place stage 2
// opens a listening socket.
//
// Stage 2 does not change how a server gets its listening socket: socket,
// setsockopt SO_REUSEADDR, bind, listen, exactly as step1_echo/server.cpp
// shows them (docs/01-echo.md#socket). The fork server (server_fork.cpp) and
// every relay (relay.cpp: select, epoll, and stage 3's TLS relay) call this
// one function; they differ only in the backlog and in SOCK_NONBLOCK.
#pragma once

#include "../common/explain.hpp"
#include "../common/fd.hpp"
#include "../common/options.hpp"

namespace step2 {

// Steps 1-4 on opts.bind:opts.port. `backlog` is listen()'s queue of finished
// handshakes; `type_flags` is added to SOCK_STREAM | SOCK_CLOEXEC
// (SOCK_NONBLOCK for a loop that must never wait in accept()). Throws
// std::system_error naming the call and the address, e.g.
// "bind 0.0.0.0:7002: Address already in use".
common::Fd open_listener(const common::ServerOptions& opts, common::Explain& explain, int backlog,
                         int type_flags);

}  // namespace step2
