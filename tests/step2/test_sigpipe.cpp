// Stage 2: a client that is gone before the relay writes to it costs only
// itself. A connection that sent FIN and then RST (all before the relay
// accepted it) answers the relay's first write, its welcome line, with EPIPE,
// and by default also with SIGPIPE, which would end the whole server: the
// relay sends with MSG_NOSIGNAL. docs/01-echo.md#sigpipe-and-msg_nosignal
#include <string>

#include "doctest.h"
#include "harness.hpp"

using namespace test;

TEST_CASE("relay: clients that half-close and reset before their welcome cost only themselves") {
    Server s = start_server("step2_multiclient/server");
    for (int i = 0; i < 3; ++i) {
        Conn gone(s.port);
        gone.shutdown_write();  // FIN: the relay's side of it is now in CLOSE_WAIT
        gone.reset();           // RST: the relay's next write to it gets EPIPE
    }
    Conn b(s.port);
    const auto welcome = b.line();
    INFO("server stderr: " << s.proc.stderr_text());
    CHECK(welcome.has_value());
    CHECK(s.proc.running());
}
