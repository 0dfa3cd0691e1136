// Stage 3: flow control and the relay's edge cases over TLS (the relay core
// is stage 2's; these check what TLS changes: records, close_notify).
// docs/02-multiclient.md#the-slow-reader, docs/03-tls.md#ssl_pending
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "doctest.h"
#include "harness.hpp"
#include "tls_conn.hpp"

using namespace test;

TEST_CASE("step3 flow: a client that has left no longer counts: the newcomer is welcomed at once") {
    Certs certs;
    Server s = start_tls_server(certs, {"--max-clients", "5"});
    std::vector<std::unique_ptr<Member>> m;
    for (int i = 0; i < 5; ++i)
        m.push_back(std::make_unique<Member>(s.port, certs));
    for (int i = 0; i < 5; ++i) {
        for (int j = i + 1; j < 5; ++j)
            CHECK(m[i]->conn.line() == "* guest-" + std::to_string(j + 1) + " joined");
    }
    m[0]->conn.send("/quit\n");  // it keeps its connection open: the server waits for it
    CHECK(m[0]->conn.line() == "* bye");
    for (int i = 1; i < 5; ++i)
        CHECK(m[i]->conn.line() == "* guest-1 left");
    Member newcomer(s.port, certs);
    CHECK(newcomer.welcome == "* welcome guest-6 (5 online)");  // not "server full"
    newcomer.conn.send("/who\n");
    CHECK(newcomer.conn.line() == "* online: guest-2, guest-3, guest-4, guest-5, guest-6");
}

TEST_CASE("step3 flow: a client's records that arrived together are relayed together") {
    // With the server stopped, a chatter sends 200 lines, each its own TLS
    // record, and another client one line. Once the server runs again, one
    // wake-up finds both ready: it takes every record the chatter has sent
    // (up to a fair budget), so the other line comes before or after the
    // chatter's 200, never among them (one record per wake-up: after c0).
    Certs certs;
    Server s = start_tls_server(certs);
    Member reader(s.port, certs), chatter(s.port, certs), other(s.port, certs);
    CHECK(reader.conn.line() == "* guest-2 joined");
    CHECK(reader.conn.line() == "* guest-3 joined");
    CHECK(chatter.conn.line() == "* guest-3 joined");
    s.proc.signal(SIGSTOP);
    constexpr int kLines = 200;
    for (int i = 0; i < kLines; ++i)
        chatter.conn.send("c" + std::to_string(i) + "\n");  // one SSL_write, one record
    other.conn.send("marker\n");
    // Every byte both sent has reached the server's kernel (nothing unacked
    // on our side), so one wake-up will find all of it; on a busy machine
    // some could still be on its way otherwise.
    for (TlsConn* c : {&chatter.conn, &other.conn}) {
        CHECK(eventually([&] {
            int unacked = -1;
            return ::ioctl(c->raw_fd(), SIOCOUTQ, &unacked) == 0 && unacked == 0;
        }));
    }
    // Both wait in the server's receive queues (ss: Recv-Q) before it runs.
    const std::string ss = "ss -Htn state established '( sport = :" + std::to_string(s.port) +
                           " )' | awk '$1 > 0' | wc -l";
    CHECK(eventually([&] {
        std::string out;
        return shell(ss, &out) == 0 && std::atoi(out.c_str()) >= 2;
    }));
    s.proc.signal(SIGCONT);
    std::vector<std::string> lines;
    while (lines.size() < kLines + 1) {
        const auto l = reader.conn.line();
        REQUIRE(l.has_value());
        lines.push_back(*l);
    }
    const auto marker = std::find(lines.begin(), lines.end(), "guest-3: marker");
    REQUIRE(marker != lines.end());
    const auto at = marker - lines.begin();
    lines.erase(marker);
    for (int i = 0; i < kLines; ++i)
        CHECK(lines[static_cast<std::size_t>(i)] == "guest-2: c" + std::to_string(i));
    INFO("the marker came after " << at << " of the chatter's lines");
    CHECK((at == 0 || at == kLines));
}

TEST_CASE(
    "step3 flow: SIGTERM while clients flood — each reads 'server shutting down' last, then "
    "close_notify") {
    Certs certs;
    Server s = start_tls_server(certs);
    constexpr int kClients = 4;
    std::vector<std::unique_ptr<Member>> m;
    for (int i = 0; i < kClients; ++i)
        m.push_back(std::make_unique<Member>(s.port, certs));
    std::vector<std::atomic<int>> received(kClients);
    std::vector<std::string> tail(kClients);  // what came after the shutdown line
    std::vector<int> saw_shutdown(kClients, 0), closed_cleanly(kClients, 0);
    std::vector<std::thread> threads;
    const std::string batch = [] {
        std::string b;
        for (int i = 0; i < 512; ++i)
            b += "flood " + std::string(90, 'x') + "\n";
        return b;
    }();
    for (int i = 0; i < kClients; ++i) {
        threads.emplace_back([&, i] {
            TlsConn& c = m[i]->conn;
            std::string text;  // the end of what came so far
            int total = 0;
            const auto deadline = std::chrono::steady_clock::now() + 15s;
            while (std::chrono::steady_clock::now() < deadline && !c.eof()) {
                c.send(batch);
                const std::string got = c.available(1ms);
                text += got;
                total += static_cast<int>(got.size());
                received[i] = total;
                const auto at = text.find("* server shutting down\n");
                if (at == std::string::npos) {
                    if (text.size() > 4096) text.erase(0, text.size() - 64);
                    continue;
                }
                saw_shutdown[i] = 1;
                text += c.until_eof(3000ms);
                tail[i] = text.substr(at + 23);
                // close_notify, then FIN: recv() says 0. Closing with our
                // input unread would have sent RST instead (ECONNRESET).
                pollfd p{c.raw_fd(), POLLIN, 0};
                ::poll(&p, 1, 3000);
                char byte = 0;
                const bool fin = ::recv(c.raw_fd(), &byte, 1, MSG_DONTWAIT) == 0;
                closed_cleanly[i] = c.got_close_notify() && fin ? 1 : 0;
                return;
            }
        });
    }
    CHECK(eventually(
        [&] {
            for (const auto& r : received)
                if (r < 100000) return false;
            return true;
        },
        10000ms));
    s.proc.signal(SIGTERM);
    for (auto& t : threads)
        t.join();
    for (int i = 0; i < kClients; ++i) {
        INFO("client " << i);
        CHECK(saw_shutdown[i] == 1);
        CHECK(tail[i].empty());  // the last line
        CHECK(closed_cleanly[i] == 1);
    }
    CHECK(s.proc.wait(3000ms) == 0);
}
