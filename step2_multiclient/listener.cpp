// step2_multiclient/listener.cpp: steps 1-4, as in stage 1 (see listener.hpp).
#include "listener.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

#include <string>

#include "../common/error.hpp"
#include "../common/net.hpp"

namespace step2 {

common::Fd open_listener(const common::ServerOptions& opts, common::Explain& explain, int backlog,
                         int type_flags) {
    const auto addresses = common::resolve(opts.bind, opts.port, /*passive=*/true);
    const common::Address& addr = addresses.front();
    const std::string where = common::format_address(addr);

    // Step 1: a TCP socket.  docs/01-echo.md#socket
    common::Fd listener(common::check(
        ::socket(addr.family, SOCK_STREAM | SOCK_CLOEXEC | type_flags, 0), "socket", where));
    explain.socket(listener.get(), addr.family);

    // Step 2: reuse the port despite TIME_WAIT.  docs/01-echo.md#setsockopt
    const int on = 1;
    common::check(::setsockopt(listener.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on),
                  "setsockopt SO_REUSEADDR", where);
    explain.setsockopt(listener.get(), "SO_REUSEADDR");

    // Step 3: claim the address.  docs/01-echo.md#bind
    common::check(::bind(listener.get(), addr.sa(), addr.length), "bind", where);
    explain.bind(listener.get(), common::local_address(listener.get()));

    // Step 4: listen.  docs/01-echo.md#listen
    common::check(::listen(listener.get(), backlog), "listen", where);
    explain.listen(listener.get(), backlog);
    return listener;
}

}  // namespace step2
