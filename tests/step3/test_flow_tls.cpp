// Stage 3: flow control and the relay's edge cases over TLS (the relay core
// is stage 2's; these check what TLS changes: records, close_notify).
// docs/02-multiclient.md#the-slow-reader, docs/03-tls.md#ssl_pending
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../../step2_multiclient/relay.hpp"
#include "doctest.h"
#include "harness.hpp"
#include "tls_conn.hpp"

using namespace test;

namespace {

// One TLS client driven by its own thread that never blocks: it sends the
// records `next(0)`, `next(1)` ... (one SSL_write each, until next returns
// "") while it reads whatever comes, so a flooder cannot deadlock against a
// server that has stopped reading it. `chunk` bytes per SSL_read and `pause`
// after each read make a slow-draining reader (0: as fast as it can).
// Received lines "<nick>: n<i> ..." are checked as they come: from each
// sender, i must be 0, 1, 2 ... (once each, in order, no gap).
class Pump {
  public:
    struct Options {
        std::function<std::string(long)> next = [](long) { return std::string(); };
        std::size_t chunk = 16384;
        Duration pause = 0ms;
        Duration limit = 40000ms;
        // > 0: encrypt this many records at a time into memory, then send()
        // them together: as many small records as the kernel takes.
        std::size_t batch = 0;
    };
    Pump(TlsConn& conn, Options opts)
        : conn_(conn), opts_(std::move(opts)), buf_(conn.available(0ms)) {
        REQUIRE(conn_.ok());
        thread_ = std::thread([this] { run(); });
    }
    ~Pump() { join(); }
    Pump(const Pump&) = delete;
    Pump& operator=(const Pump&) = delete;

    void join() {
        stop = true;
        if (thread_.joinable()) thread_.join();
    }
    std::atomic<bool> stop{false};
    std::atomic<bool> hurry{false};  // a slow reader: read as fast as it can from now on
    std::atomic<long> count{0};      // numbered lines received
    std::atomic<long> sent{0};       // records SSL_write took
    std::atomic<bool> done_sending{false};
    std::atomic<bool> eof{false};  // the server closed (close_notify, FIN or error)
    std::atomic<bool> write_failed{false};

    long from(const std::string& nick) const {
        std::lock_guard lock(mutex_);
        const auto it = next_.find(nick);
        return it == next_.end() ? 0 : it->second;
    }
    int seen(const std::string& notice) const {
        std::lock_guard lock(mutex_);
        return static_cast<int>(std::count(notices_.begin(), notices_.end(), notice));
    }
    std::vector<std::string> notices() const {
        std::lock_guard lock(mutex_);
        return notices_;
    }
    std::vector<std::string> senders() const {
        std::lock_guard lock(mutex_);
        std::vector<std::string> out;
        for (const auto& [nick, n] : next_)
            out.push_back(nick);
        return out;
    }
    // In how many separate runs the sender's lines came (1: all together).
    int runs(const std::string& nick) const {
        std::lock_guard lock(mutex_);
        const auto it = runs_.find(nick);
        return it == runs_.end() ? 0 : it->second;
    }
    std::string disorder() const {  // the first line out of order, "" if none
        std::lock_guard lock(mutex_);
        return bad_;
    }

  private:
    void take(std::string_view data) {
        buf_.append(data);
        std::size_t start = 0;
        std::lock_guard lock(mutex_);
        for (std::size_t nl; (nl = buf_.find('\n', start)) != std::string::npos; start = nl + 1) {
            const std::string_view l(buf_.data() + start, nl - start);
            const auto colon = l.find(": n");
            if (l.rfind("* ", 0) == 0 || colon == std::string_view::npos) {
                notices_.emplace_back(l);
                continue;
            }
            const std::string sender(l.substr(0, colon));
            if (sender != last_sender_) ++runs_[sender];
            last_sender_ = sender;
            long& expected = next_[sender];
            const long n = std::atol(std::string(l.substr(colon + 3, 12)).c_str());
            if (n != expected && bad_.empty())
                bad_ =
                    std::string(l.substr(0, 40)) + " (expected n" + std::to_string(expected) + ")";
            expected = n + 1;
            ++count;
        }
        buf_.erase(0, start);
    }

    void run() {
        SSL* ssl = conn_.ssl();
        const int fd = conn_.raw_fd();
        ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
        take({});  // what the TlsConn had already read
        const auto deadline = std::chrono::steady_clock::now() + opts_.limit;
        std::vector<char> block(opts_.chunk);
        std::string record;  // after WANT_WRITE, SSL_write wants the same bytes again
        bool sending = true;
        BIO* memory = nullptr;
        std::string wire;  // batch: records encrypted, not yet sent
        if (opts_.batch > 0) {
            memory = ::BIO_new(::BIO_s_mem());
            ::SSL_set0_wbio(ssl, memory);  // ssl owns it
        }
        while (!stop && std::chrono::steady_clock::now() < deadline) {
            bool progress = false, want_write = false;
            std::size_t got = 0;
            const int rc =
                ::SSL_read_ex(ssl, block.data(), hurry ? block.size() : opts_.chunk, &got);
            if (rc == 1) {
                take(std::string_view(block.data(), got));
                progress = true;
                if (opts_.pause > 0ms && !hurry) std::this_thread::sleep_for(opts_.pause);
            } else if (const int err = ::SSL_get_error(ssl, rc); err == SSL_ERROR_WANT_WRITE) {
                want_write = true;
            } else if (err != SSL_ERROR_WANT_READ) {
                eof = true;  // nothing more will come, and nothing more can go
                return;
            }
            if (memory != nullptr) {
                if (sending && wire.size() < 65536) {
                    for (std::size_t k = 0; k < opts_.batch && sending; ++k) {
                        const std::string r = opts_.next(sent);
                        std::size_t n = 0;
                        if (r.empty()) {
                            sending = false;
                            done_sending = true;
                        } else if (::SSL_write_ex(ssl, r.data(), r.size(), &n) == 1) {
                            ++sent;
                        } else {
                            write_failed = true;
                            sending = false;
                        }
                    }
                    char* data = nullptr;
                    const long len = BIO_get_mem_data(memory, &data);
                    wire.append(data, static_cast<std::size_t>(len));
                    (void)BIO_reset(memory);
                }
                if (!wire.empty()) {
                    const ssize_t n = ::send(fd, wire.data(), wire.size(), MSG_NOSIGNAL);
                    if (n > 0) {
                        wire.erase(0, static_cast<std::size_t>(n));
                        progress = true;
                    } else if (errno == EAGAIN || errno == EINTR) {
                        want_write = true;
                    } else {
                        write_failed = true;
                        sending = false;
                        wire.clear();
                    }
                }
            } else if (sending) {
                if (record.empty()) record = opts_.next(sent);
                if (record.empty()) {
                    sending = false;
                    done_sending = true;
                } else {
                    std::size_t n = 0;
                    const int w = ::SSL_write_ex(ssl, record.data(), record.size(), &n);
                    if (w == 1) {
                        record.clear();
                        ++sent;
                        progress = true;
                    } else if (const int err = ::SSL_get_error(ssl, w);
                               err == SSL_ERROR_WANT_WRITE) {
                        want_write = true;
                    } else if (err != SSL_ERROR_WANT_READ) {
                        write_failed = true;
                        sending = false;
                    }
                }
            }
            if (!progress) {
                pollfd p{fd, static_cast<short>(POLLIN | (want_write ? POLLOUT : 0)), 0};
                ::poll(&p, 1, 50);
            }
        }
    }

    TlsConn& conn_;
    Options opts_;
    std::string buf_;
    mutable std::mutex mutex_;
    std::map<std::string, long> next_;  // per sender, the number its next line must have
    std::vector<std::string> notices_;  // every other line ("* ...")
    std::map<std::string, int> runs_;
    std::string last_sender_;
    std::string bad_;
    std::thread thread_;
};

// Records of `per_record` numbered lines of `size` bytes: "n<i> xxx...\n".
std::function<std::string(long)> numbered(long lines, long per_record, std::size_t size) {
    return [=](long record) {
        std::string out;
        for (long i = record * per_record; i < std::min(lines, (record + 1) * per_record); ++i) {
            std::string l = "n" + std::to_string(i) + " ";
            l.resize(size - 1, 'x');
            out += l + "\n";
        }
        return out;
    };
}

// guest-1, guest-2 and guest-3 came in that order: the first has seen the
// other two join, the second the third.
void expect_joins(Member& first, Member& second) {
    CHECK(first.conn.line() == "* guest-2 joined");
    CHECK(first.conn.line() == "* guest-3 joined");
    CHECK(second.conn.line() == "* guest-3 joined");
}

// With the server stopped: wait until every byte these connections sent has
// reached the server's kernel (nothing unacked on our side, and that many
// connections show a Recv-Q), so that its next wake-up finds all of it. On a
// busy machine some could still be on its way otherwise.
void wait_until_server_has_it_all(const Server& s, std::vector<const TlsConn*> senders) {
    for (const TlsConn* c : senders) {
        CHECK(eventually([&] {
            int unacked = -1;
            return ::ioctl(c->raw_fd(), SIOCOUTQ, &unacked) == 0 && unacked == 0;
        }));
    }
    const std::string ss = "ss -Htn state established '( sport = :" + std::to_string(s.port) +
                           " )' | awk '$1 > 0' | wc -l";
    CHECK(eventually([&] {
        std::string out;
        return shell(ss, &out) == 0 && std::atoi(out.c_str()) >= static_cast<int>(senders.size());
    }));
}

}  // namespace

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
    expect_joins(reader, chatter);
    s.proc.signal(SIGSTOP);
    constexpr int kLines = 200;
    for (int i = 0; i < kLines; ++i)
        chatter.conn.send("c" + std::to_string(i) + "\n");  // one SSL_write, one record
    other.conn.send("marker\n");
    wait_until_server_has_it_all(s, {&chatter.conn, &other.conn});
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

TEST_CASE("step3 flow: bytes OpenSSL still holds when a wake-up's read budget ends are relayed") {
    // The server reads at most kReadSize (64 KiB) of one client per wake-up.
    // With the server stopped, a chatter sends a 100-byte record, then
    // kReadSize in one SSL_write (four full 16 KiB records), and nothing more.
    // The wake-up reads 100 + 3 x 16384 bytes, then 16284 of the last record:
    // OpenSSL has decrypted that record whole and holds its last 100 bytes
    // (SSL_pending), while the socket is empty and select() has nothing to
    // report. A server that does not ask SSL_pending never relays the last line.
    // The burst follows kReadSize, so that the budget always ends in its last
    // record; it must be whole records for that.
    constexpr std::size_t kRecord = 16 * 1024;
    static_assert(relay::kReadSize % kRecord == 0);
    Certs certs;
    Server s = start_tls_server(certs);
    Member reader(s.port, certs), chatter(s.port, certs);
    CHECK(reader.conn.line() == "* guest-2 joined");
    s.proc.signal(SIGSTOP);
    std::vector<std::string> lines{std::string(99, 'a')};  // 100 bytes with its newline
    chatter.conn.send(lines[0] + "\n");
    std::string burst;
    for (int i = 0; burst.size() < relay::kReadSize; ++i) {
        std::string line = "b" + std::to_string(i) + " ";
        line.resize(1023, 'b');  // lines of 1024 bytes: exactly kReadSize in all
        burst += line + "\n";
        lines.push_back(line);
    }
    REQUIRE(burst.size() == relay::kReadSize);
    chatter.conn.send(burst);
    wait_until_server_has_it_all(s, {&chatter.conn});
    s.proc.signal(SIGCONT);
    for (const std::string& line : lines) {
        const auto got = reader.conn.line();
        REQUIRE(got.has_value());
        CHECK(*got == "guest-2: " + line);
    }
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

TEST_CASE(
    "step3 flow: flooders and a slow-draining reader — the honest get every line; the slow one is "
    "dropped") {
    // As stage 2's test, over TLS: four clients each send 40,000 lines of 100
    // bytes (64 per record) while reading everything, a fifth only reads, as
    // fast as it can; guest-1 takes 4 KiB every 50 ms (80 KB/s). 16 MB are
    // due to it: more than the kernel's buffers on both sides and our 1 MiB.
    Certs certs;
    Server s = start_tls_server(certs);
    constexpr int kFlooders = 4;
    constexpr long kLines = 40000;
    Member slow(s.port, certs);  // guest-1
    std::vector<std::unique_ptr<Member>> m;
    std::vector<std::string> nicks;
    for (int i = 0; i < kFlooders; ++i) {
        m.push_back(std::make_unique<Member>(s.port, certs));
        nicks.push_back("guest-" + std::to_string(i + 2));
    }
    Member reader(s.port, certs);  // guest-6
    Pump slow_pump(slow.conn, {.chunk = 4096, .pause = 50ms});
    Pump reader_pump(reader.conn, {});
    std::vector<std::unique_ptr<Pump>> flooders;
    for (int i = 0; i < kFlooders; ++i)
        flooders.push_back(
            std::make_unique<Pump>(m[i]->conn, Pump::Options{numbered(kLines, 64, 100)}));
    std::vector<Pump*> honest{&reader_pump};
    for (auto& f : flooders)
        honest.push_back(f.get());

    const std::string dropped = "* guest-1 left (too slow)";
    const long all = kFlooders * kLines;  // what the reader (and a slow one that kept up) is due
    auto honest_have_all = [&] {
        if (reader_pump.count < all) return false;
        return std::all_of(flooders.begin(), flooders.end(),
                           [&](const auto& f) { return f->count >= all - kLines; });
    };
    // Either the slow one kept up, or the honest were told it was dropped.
    auto slow_settled = [&] {
        if (slow_pump.count >= all) return true;
        return std::all_of(honest.begin(), honest.end(),
                           [&](const Pump* p) { return p->seen(dropped) > 0; });
    };
    // No time limit on the honest ones beyond the test's: the slow reader
    // must not hold them back for ever, nor stay connected behind them.
    CHECK(eventually([&] { return honest_have_all() && slow_settled(); }, 40000ms));
    const bool kept_up = slow_pump.count >= all;
    if (!kept_up) {
        // Dropped: the server closed it. It reads the rest at full speed now,
        // up to the end (on a loaded machine, several MB waited in buffers).
        slow_pump.hurry = true;
        CHECK(eventually([&] { return slow_pump.eof.load(); }, 20000ms));
    }
    slow_pump.join();
    reader_pump.join();
    for (auto& f : flooders)
        f->join();

    for (int i = 0; i < kFlooders; ++i) {
        INFO("flooder " << nicks[i]);
        CHECK_FALSE(flooders[i]->write_failed);
        CHECK(flooders[i]->done_sending);
    }
    for (std::size_t i = 0; i < honest.size(); ++i) {
        const Pump& p = *honest[i];
        INFO("honest client " << i << " (0: the reader)");
        CHECK(p.disorder() == "");
        for (const std::string& nick : nicks) {
            if (i > 0 && nick == nicks[i - 1]) continue;  // its own lines do not come back
            INFO("lines from " << nick);
            CHECK(p.from(nick) == kLines);
        }
        CHECK(p.senders().size() == (i == 0 ? kFlooders : kFlooders - 1));
        // Told once, if the slow one was dropped; nobody else was.
        int too_slow = 0;
        for (const std::string& l : p.notices())
            too_slow += l.find("(too slow)") != std::string::npos ? 1 : 0;
        CHECK(p.seen(dropped) == (kept_up ? 0 : 1));
        CHECK(too_slow == p.seen(dropped));
    }
    // What the slow one got came once and in order, up to where it was cut.
    CHECK(slow_pump.disorder() == "");
    if (kept_up) {
        CHECK_FALSE(slow_pump.eof);
    } else {
        CHECK(slow_pump.count < all);
        CHECK(slow_pump.eof);
    }
}

TEST_CASE("step3 flow: a chatter's lines all arrive while a flooder sends many small records") {
    // The flooder sends one 60-byte line per TLS record, without end, as
    // fast as the kernel takes them. The chatter sends 50 lines, one record
    // each, in one send(): they reach the server together. Each wake-up takes
    // every record a client has, up to a budget, then the next client's: the
    // chatter's lines get through while the flood goes on, none lost or
    // reordered, and together (one record per wake-up would put flooder lines
    // between every two of them).
    Certs certs;
    Server s = start_tls_server(certs);
    Member reader(s.port, certs), flooder(s.port, certs), chatter(s.port, certs);
    expect_joins(reader, flooder);
    constexpr long kChat = 50;
    Pump reader_pump(reader.conn, {});
    Pump flood(flooder.conn, {.next = numbered(1L << 40, 1, 60), .limit = 30000ms, .batch = 256});
    // The flood is on: the reader has its lines, and its records keep coming.
    CHECK(eventually([&] { return reader_pump.from("guest-2") > 2000; }, 10000ms));
    Pump chat(chatter.conn, {.next = numbered(kChat, 1, 60), .batch = kChat});
    CHECK(eventually([&] { return reader_pump.from("guest-3") == kChat; }, 15000ms));
    const long flooded = flood.sent;
    CHECK(eventually([&] { return flood.sent > flooded + 1000; }));  // still flooding
    flood.join();
    chat.join();
    reader_pump.join();
    CHECK_FALSE(flood.write_failed);
    CHECK_FALSE(flood.eof);
    CHECK(chat.done_sending);
    CHECK(reader_pump.disorder() == "");
    CHECK(reader_pump.from("guest-3") == kChat);
    CHECK(chat.disorder() == "");
    // Together: one wake-up read all 50. A flow-control pause may split
    // them once (a reader more than 256 KiB behind), never more.
    CHECK(reader_pump.runs("guest-3") <= 2);
    for (const Pump* p : {&reader_pump, &chat}) {
        for (const std::string& l : p->notices())
            CHECK(l.find("left") == std::string::npos);  // nobody was dropped
    }
}
