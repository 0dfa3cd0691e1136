// tests/soak/soak.cpp: the chaos soak (`make soak`, SOAK_SECONDS, default 120).
//
// The stage 2 select relay and the stage 3 TLS relay run side by side for
// SOAK_SECONDS. On each, well-behaved clients chat for the whole run and
// check that every line from every other well-behaved client arrives exactly
// once, in order, intact. Meanwhile hostile clients hit both servers at once:
// they connect and vanish, reset mid-line, send random bytes, send lines of
// 1-10 MB, send half a line and then nothing, never read, read one byte a
// second, stall TLS handshakes and speak plaintext to the TLS port.
//
// Invariants, checked throughout and reported at the end:
//   - the server stays alive, and a newcomer is welcomed within 5 s (probed
//     every 5 s);
//   - the well-behaved clients' deliveries are complete (exactly once, in
//     order) and none of them is ever dropped;
//   - stalled handshakes and plaintext on the TLS port are closed in time;
//   - open descriptors return to their baseline once the hostiles stop;
//   - resident memory stops growing after the warm-up (the peak of the
//     second half of the run is within 10% + 2 MiB of the first half's);
//     under SANITIZE=1 LeakSanitizer checks for leaks at the server's exit
//     instead (ASan's quarantine makes RSS grow by design);
//   - an idle server uses (almost) no CPU;
//   - SIGTERM at the end: exit 0, and no sanitizer report in its log.
//
// SOAK_SEED=N makes the hostiles' choices repeat (the seed is printed).
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "doctest.h"
#include "harness.hpp"

using namespace test;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kWellBehaved = 4;       // per server
constexpr int kHostileThreads = 12;   // shared by both servers
constexpr int kHandshakeTimeout = 3;  // the TLS server's --handshake-timeout
constexpr auto kSendEvery = 50ms;     // each well-behaved client: 20 lines a second

// --- what went wrong, from any thread ---------------------------------------

class Problems {
  public:
    void add(const std::string& what) {
        std::lock_guard lock(mutex_);
        if (list_.size() < 50) list_.push_back(what);
        ++count_;
    }
    std::vector<std::string> list() const {
        std::lock_guard lock(mutex_);
        return list_;
    }
    int count() const {
        std::lock_guard lock(mutex_);
        return count_;
    }

  private:
    mutable std::mutex mutex_;
    std::vector<std::string> list_;
    int count_ = 0;
};

// --- a client connection, plain or TLS -------------------------------------

struct SslFree {
    void operator()(SSL* s) const { SSL_free(s); }
};
struct CtxFree {
    void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};

// Runs a function when the scope ends, however it ends.
class Finally {
  public:
    explicit Finally(std::function<void()> f) : f_(std::move(f)) {}
    ~Finally() { f_(); }
    Finally(const Finally&) = delete;
    Finally& operator=(const Finally&) = delete;

  private:
    std::function<void()> f_;
};

class Peer {
  public:
    // Connect to 127.0.0.1:port. rcvbuf > 0 shrinks the receive buffer first
    // (a small window makes a slow reader felt sooner). Every blocking call
    // on it gives up after 5 s.
    Peer(int port, int rcvbuf = 0) {
        fd_ = common::Fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!fd_) return;
        if (rcvbuf > 0) ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
        timeval tv{5, 0};
        ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ::setsockopt(fd_.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(static_cast<uint16_t>(port));
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        connected_ = ::connect(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    }

    bool connected() const { return connected_; }
    int fd() const { return fd_.get(); }

    // The TLS handshake (certificate checked against make certs' CA).
    bool start_tls(SSL_CTX* ctx) {
        ssl_.reset(SSL_new(ctx));
        SSL_set_fd(ssl_.get(), fd_.get());
        SSL_set1_host(ssl_.get(), "localhost");
        SSL_set_tlsext_host_name(ssl_.get(), "localhost");
        const bool ok = SSL_connect(ssl_.get()) == 1;
        ERR_clear_error();
        if (!ok) ssl_.reset();
        return ok;
    }

    // All of `data`, or false.
    bool send(std::string_view data) {
        while (!data.empty()) {
            std::size_t n = 0;
            if (ssl_) {
                if (SSL_write_ex(ssl_.get(), data.data(), data.size(), &n) != 1) {
                    ERR_clear_error();
                    return false;
                }
            } else {
                const ssize_t sent = ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL);
                if (sent <= 0) return false;
                n = static_cast<std::size_t>(sent);
            }
            data.remove_prefix(n);
        }
        return true;
    }

    // What arrives within `ms`, appended to `out` (at most `max` bytes);
    // false once the connection is over (EOF, reset, TLS error).
    bool read(std::string& out, int ms, std::size_t max = 16384) {
        if (!ssl_ || SSL_pending(ssl_.get()) == 0) {
            pollfd p{fd_.get(), POLLIN, 0};
            if (::poll(&p, 1, ms) <= 0) return true;
        }
        std::string chunk(max, '\0');
        std::size_t got = 0;
        if (ssl_) {
            const int rc = SSL_read_ex(ssl_.get(), chunk.data(), chunk.size(), &got);
            if (rc != 1) {
                const int err = SSL_get_error(ssl_.get(), rc);
                ERR_clear_error();
                return err == SSL_ERROR_WANT_READ;  // a ticket, no data
            }
        } else {
            const ssize_t n = ::recv(fd_.get(), chunk.data(), chunk.size(), 0);
            if (n <= 0) return false;
            got = static_cast<std::size_t>(n);
        }
        out.append(chunk, 0, got);
        return true;
    }

    // Read until EOF or `ms`; true if EOF came.
    bool closed_within(int ms) {
        const auto deadline = Clock::now() + std::chrono::milliseconds(ms);
        std::string sink;
        while (Clock::now() < deadline) {
            sink.clear();
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
            if (!read(sink, static_cast<int>(std::max<long>(1, left.count())))) return true;
        }
        return false;
    }

    // SO_LINGER 0 and close: the server gets RST.
    void reset() {
        linger l{1, 0};
        ::setsockopt(fd_.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
        ssl_.reset();
        fd_.reset();
    }

  private:
    common::Fd fd_;
    std::unique_ptr<SSL, SslFree> ssl_;  // freed before fd_ closes (declared after it)
    bool connected_ = false;
};

// Complete lines out of `buffer`.
std::vector<std::string> take_lines(std::string& buffer) {
    std::vector<std::string> lines;
    std::size_t start = 0, nl;
    while ((nl = buffer.find('\n', start)) != std::string::npos) {
        lines.push_back(buffer.substr(start, nl - start));
        start = nl + 1;
    }
    buffer.erase(0, start);
    return lines;
}

// --- one server and its well-behaved clients ---------------------------------

struct Sample {
    double t;  // seconds since the start
    long rss_kb;
    int fds;
    double cpu;
};

struct Target {
    Target(std::string n, bool t, std::string p, Server s)
        : name(std::move(n)), tls(t), prefix(std::move(p)), server(std::move(s)) {}
    std::string name;  // "stage 2 select" ...
    bool tls;
    std::string prefix;  // well-behaved nicks: prefix + index
    Server server;
    std::vector<Sample> samples;
    int baseline_fds = 0;
    // The well-behaved clients.
    std::atomic<int> ready{0};
    std::atomic<int> verified{0};
    std::atomic<bool> start{false};
    std::atomic<bool> stop{false};
    std::atomic<bool> release{false};
    std::atomic<long> delivered{0};  // lines checked on arrival
    std::atomic<long> sent{0};
    double worst_probe_ms = 0;
    int probes = 0;
};

// Is the server built with AddressSanitizer (make SANITIZE=1)? Its
// quarantine holds freed memory back, so RSS grows by design there.
bool asan_build(pid_t pid) {
    return read_file("/proc/" + std::to_string(pid) + "/exe").find("__asan_init") !=
           std::string::npos;
}

long rss_kb(pid_t pid) {
    const std::string status = read_file("/proc/" + std::to_string(pid) + "/status");
    const auto at = status.find("VmRSS:");
    return at == std::string::npos ? -1 : std::atol(status.c_str() + at + 6);
}

// What well-behaved client `sender` says in line `seq`: easy to check.
std::string payload(int sender, long seq) {
    const std::size_t n = static_cast<std::size_t>((seq * 7 + sender * 13) % 300);
    std::string text;
    for (std::size_t i = 0; i < n; ++i)
        text += static_cast<char>('a' + (seq + static_cast<long>(i)) % 26);
    return text;
}

// One well-behaved client: joins, takes a nick, and once all are ready
// sends a numbered line every 50 ms, checking everything it reads. At the
// end it sends "END <count>" and waits for everyone else's.
void well_behaved(Target& t, int me, SSL_CTX* tls, Problems& problems) {
    const std::string nick = t.prefix + std::to_string(me);
    auto fail = [&](const std::string& what) { problems.add(t.name + " " + nick + ": " + what); };
    Peer p(t.server.port);
    if (!p.connected() || (t.tls && !p.start_tls(tls))) return fail("could not connect");
    std::string buffer;
    auto wait_for = [&](auto predicate) {
        const auto deadline = Clock::now() + 10s;
        while (Clock::now() < deadline) {
            if (!p.read(buffer, 50)) return false;
            for (const std::string& line : take_lines(buffer))
                if (predicate(line)) return true;
        }
        return false;
    };
    std::string guest;
    if (!wait_for([&](const std::string& l) {
            if (l.rfind("* welcome ", 0) != 0) return false;
            guest = l.substr(10, l.find(' ', 10) - 10);
            return true;
        }))
        return fail("no welcome");
    if (!p.send("/nick " + nick + "\n")) return fail("send failed");
    if (!wait_for([&](const std::string& l) { return l == "* " + guest + " is now " + nick; }))
        return fail("no rename");
    ++t.ready;
    while (!t.start)
        std::this_thread::sleep_for(10ms);

    std::map<std::string, int> others;  // nick -> index
    for (int i = 0; i < kWellBehaved; ++i)
        if (i != me) others[t.prefix + std::to_string(i)] = i;
    std::vector<long> expected(kWellBehaved, 0);    // next seq from each
    std::vector<long> announced(kWellBehaved, -1);  // their END count
    long seq = 0;
    bool ended = false;
    auto next_send = Clock::now();
    auto check = [&](const std::string& line) {
        if (line.rfind("* ", 0) == 0) {
            for (const auto& [name, index] : others) {
                // Until the end, when they /quit one by one.
                if (!t.release && line.rfind("* " + name + " left", 0) == 0) fail("saw " + line);
            }
            if (line == "* server shutting down") fail("server shut down");
            return;
        }
        const auto colon = line.find(": ");
        if (colon == std::string::npos) return;
        const std::string from = line.substr(0, colon);
        if (from == nick) return fail("got its own line back");
        const auto it = others.find(from);
        if (it == others.end()) return;  // a hostile's line
        const int j = it->second;
        const std::string text = line.substr(colon + 2);
        if (text.rfind("END ", 0) == 0) {
            announced[j] = std::atol(text.c_str() + 4);
            return;
        }
        const long got = std::atol(text.c_str());
        const std::string want = std::to_string(expected[j]) + " " + payload(j, expected[j]);
        if (text != want) {
            fail("from " + from + " expected line " + std::to_string(expected[j]) + ", got " +
                 (got < expected[j] ? "a duplicate " : "a gap to ") + std::to_string(got));
            expected[j] = got;  // resynchronise, report once
        }
        ++expected[j];
        ++t.delivered;
    };
    auto all_announced = [&] {
        for (const auto& [name, j] : others)
            if (announced[j] < 0) return false;
        return true;
    };
    const auto give_up = [&] { return t.stop && Clock::now() > next_send + 60s; };
    while (!ended || !all_announced()) {
        if (give_up()) return fail("did not hear END from everyone within 60 s");
        if (!ended && t.stop) {
            if (!p.send("END " + std::to_string(seq) + "\n")) return fail("send failed");
            ended = true;
            next_send = Clock::now();
        }
        if (!ended && Clock::now() >= next_send) {
            if (!p.send(std::to_string(seq) + " " + payload(me, seq) + "\n"))
                return fail("send failed: dropped by the server?");
            ++seq;
            ++t.sent;
            next_send += kSendEvery;
        }
        if (!p.read(buffer, 10, 65536)) return fail("connection lost");
        for (const std::string& line : take_lines(buffer))
            check(line);
    }
    for (const auto& [name, j] : others) {
        if (expected[j] != announced[j])
            fail("from " + name + " got " + std::to_string(expected[j]) + " of " +
                 std::to_string(announced[j]) + " lines");
    }
    ++t.verified;
    // Stay connected (and reading) while the descriptors are counted.
    while (!t.release) {
        if (!p.read(buffer, 50, 65536)) return fail("connection lost while idle");
        for (const std::string& line : take_lines(buffer))
            check(line);
    }
    p.send("/quit\n");
    p.closed_within(3000);
}

// --- hostile clients -----------------------------------------------------------

enum Kind {
    vanish,
    reset_mid_line,
    random_bytes_kind,
    huge_line,
    half_line_silence,
    never_read,
    slow_read,
    stall_handshake,
    plaintext_to_tls,
    flood,
    kinds
};
const char* const kKindNames[kinds] = {
    "connect and vanish",    "reset mid-line", "random bytes",  "1-10 MB line",
    "half line, silence",    "never read",     "read 1 byte/s", "stalled handshake",
    "plaintext to TLS port", "flood of lines"};

struct Hostiles {
    std::atomic<bool> stop{false};
    std::atomic<long> runs[kinds] = {};
    std::atomic<long> connect_failures{0};
};

// Sleep up to `d`, but wake when the run is over.
void nap(Hostiles& h, std::chrono::milliseconds d) {
    const auto until = Clock::now() + d;
    while (!h.stop && Clock::now() < until)
        std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(50ms, d));
}

// A ClientHello, for a handshake that stops half-way.
std::string client_hello() {
    const std::unique_ptr<SSL_CTX, CtxFree> ctx(SSL_CTX_new(TLS_client_method()));
    const std::unique_ptr<SSL, SslFree> ssl(SSL_new(ctx.get()));
    BIO* out = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl.get(), BIO_new(BIO_s_mem()), out);  // ssl owns both
    SSL_connect(ssl.get());                             // WANT_READ: the hello is in `out`
    char* data = nullptr;
    const long n = BIO_get_mem_data(out, &data);
    ERR_clear_error();
    return std::string(data, static_cast<std::size_t>(std::max(0L, n)));
}

void hostile(Hostiles& h, Target& plain, Target& tls_target, SSL_CTX* tls, unsigned seed,
             Problems& problems) {
    std::mt19937 rng(seed);
    auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
    const std::string hello = client_hello();
    while (!h.stop) {
        const auto kind = static_cast<Kind>(pick(0, kinds - 1));
        // The TLS-only kinds go to the TLS server; the others to either.
        const bool on_tls = kind == stall_handshake || kind == plaintext_to_tls || pick(0, 1) == 1;
        Target& t = on_tls ? tls_target : plain;
        const bool small_window = kind == never_read || kind == slow_read;
        Peer p(t.server.port, small_window ? 4096 : 0);
        if (!p.connected()) {
            ++h.connect_failures;
            nap(h, 100ms);
            continue;
        }
        // Kinds that speak the protocol first finish the handshake.
        const bool raw = kind == vanish || kind == stall_handshake || kind == plaintext_to_tls ||
                         (kind == random_bytes_kind && pick(0, 1) == 0);
        if (on_tls && !raw && !p.start_tls(tls)) {
            ++h.connect_failures;
            continue;
        }
        ++h.runs[kind];
        switch (kind) {
            case vanish:
                if (pick(0, 1) == 1) nap(h, std::chrono::milliseconds(pick(0, 200)));
                break;  // ~Peer closes it
            case reset_mid_line:
                p.send("half a li");
                nap(h, std::chrono::milliseconds(pick(0, 100)));
                p.reset();
                break;
            case random_bytes_kind:
                p.send(random_bytes(static_cast<std::size_t>(pick(1, 64)) * 1024, rng()));
                if (pick(0, 1) == 1) p.reset();
                break;
            case huge_line: {
                const std::string block(64 * 1024, 'A');  // no newline anywhere
                const int blocks = pick(16, 160);         // 1-10 MB
                for (int i = 0; i < blocks && !h.stop; ++i)
                    if (!p.send(block)) break;  // the server closed it: as it should
                break;
            }
            case half_line_silence:
                p.send("a line that never ends");
                nap(h, std::chrono::milliseconds(pick(1000, 5000)));
                break;
            case never_read:
                nap(h, std::chrono::milliseconds(pick(3000, 12000)));
                if (pick(0, 1) == 1) p.reset();
                break;
            case slow_read:
                for (int i = 0; i < 10 && !h.stop; ++i) {
                    char c;
                    if (::recv(p.fd(), &c, 1, MSG_DONTWAIT) == 0) break;  // dropped
                    nap(h, 1000ms);
                }
                break;
            case stall_handshake: {
                if (pick(0, 1) == 1) p.send(hello.substr(0, hello.size() / 2));
                // The deadline must close it: --handshake-timeout, plus slack.
                const bool closed = p.closed_within((kHandshakeTimeout + 3) * 1000);
                if (!closed && !h.stop) problems.add("TLS: a stalled handshake was not dropped");
                break;
            }
            case plaintext_to_tls:
                p.send(pick(0, 1) ? "hello there\n" : "GET / HTTP/1.0\r\n\r\n");
                if (!p.closed_within(5000) && !h.stop)
                    problems.add("TLS: plaintext on the TLS port did not end the connection");
                break;
            case flood: {  // 1-2 MB of valid lines, as fast as the server takes them
                const std::string line = std::string(999, 'f') + "\n";
                const int lines = pick(1000, 2000);
                std::string burst;
                for (int i = 0; i < 64; ++i)
                    burst += line;
                for (int i = 0; i < lines / 64 && !h.stop; ++i)
                    if (!p.send(burst)) break;
                break;
            }
            case kinds:
                break;
        }
        nap(h, std::chrono::milliseconds(pick(10, 200)));
    }
}

// A newcomer is welcomed within 5 s; returns how long it took (ms), or -1.
double probe(const Target& t, SSL_CTX* tls) {
    const auto start = Clock::now();
    Peer p(t.server.port);
    if (!p.connected() || (t.tls && !p.start_tls(tls))) return -1;
    std::string buffer;
    while (Clock::now() - start < 5s) {
        if (!p.read(buffer, 100)) return -1;
        if (buffer.rfind("* welcome ", 0) == 0 && buffer.find('\n') != std::string::npos) {
            p.send("/quit\n");
            return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
        }
    }
    return -1;
}

}  // namespace

TEST_CASE("chaos soak: stage 2 and stage 3 relays under well-behaved and hostile clients") {
    const char* env_seconds = std::getenv("SOAK_SECONDS");
    const int seconds = std::max(10, env_seconds ? std::atoi(env_seconds) : 120);
    const char* env_seed = std::getenv("SOAK_SEED");
    const unsigned seed = env_seed ? static_cast<unsigned>(std::atol(env_seed))
                                   : static_cast<unsigned>(::time(nullptr));
    std::printf("soak: %d s, seed %u (SOAK_SEED=%u repeats the hostiles' choices)\n", seconds, seed,
                seed);
    std::fflush(stdout);

    const std::unique_ptr<SSL_CTX, CtxFree> tls_ctx(SSL_CTX_new(TLS_client_method()));
    SSL_CTX* tls = tls_ctx.get();  // shared by every client thread (OpenSSL allows it)
    REQUIRE(tls != nullptr);
    REQUIRE(SSL_CTX_load_verify_locations(tls, repo_path("step3_tls/certs/ca.crt").c_str(),
                                          nullptr) == 1);
    SSL_CTX_set_verify(tls, SSL_VERIFY_PEER, nullptr);

    Target plain{"stage 2 select relay", false, "wbp", start_server("step2_multiclient/server")};
    Target secure{"stage 3 TLS relay", true, "wbt",
                  start_server("step3_tls/server",
                               {"--handshake-timeout", std::to_string(kHandshakeTimeout)})};
    Target* targets[] = {&plain, &secure};
    Problems problems;
    Hostiles h;
    std::vector<std::thread> good, bad;
    // Should a REQUIRE end the test early: every thread is told to finish,
    // and joined, before the servers and the SSL_CTX go away.
    const Finally join_all([&] {
        h.stop = true;
        for (Target* t : targets)
            t->start = t->stop = t->release = true;
        for (auto* threads : {&good, &bad})
            for (std::thread& th : *threads)
                if (th.joinable()) th.join();
    });

    // Warm up: one probe each, so lazily opened descriptors exist before the
    // baseline is taken; then the well-behaved clients join.
    for (Target* t : targets)
        REQUIRE(probe(*t, tls) >= 0);
    for (Target* t : targets)
        for (int i = 0; i < kWellBehaved; ++i)
            good.emplace_back(well_behaved, std::ref(*t), i, tls, std::ref(problems));
    for (Target* t : targets) {
        REQUIRE(eventually([&] { return t->ready == kWellBehaved; }, 15000ms));
        // The probe has gone; baseline = the server with its well-behaved clients.
        REQUIRE(eventually(
            [&] {
                const int a = open_fd_count(t->server.proc.pid());
                ::usleep(200'000);
                return a == open_fd_count(t->server.proc.pid());
            },
            5000ms));
        t->baseline_fds = open_fd_count(t->server.proc.pid());
        t->start = true;
    }

    for (int i = 0; i < kHostileThreads; ++i)
        bad.emplace_back(hostile, std::ref(h), std::ref(plain), std::ref(secure), tls, seed + i,
                         std::ref(problems));

    // The run: sample every second, probe every 5 s.
    const auto t0 = Clock::now();
    int tick = 0;
    while (Clock::now() - t0 < std::chrono::seconds(seconds)) {
        std::this_thread::sleep_for(1s);
        ++tick;
        for (Target* t : targets) {
            const pid_t pid = t->server.proc.pid();
            if (!t->server.proc.running()) {
                problems.add(t->name + ": the server died");
                continue;
            }
            t->samples.push_back({std::chrono::duration<double>(Clock::now() - t0).count(),
                                  rss_kb(pid), open_fd_count(pid), cpu_seconds(pid)});
            if (tick % 5 == 0) {
                const double ms = probe(*t, tls);
                ++t->probes;
                if (ms < 0) problems.add(t->name + ": a newcomer was not welcomed within 5 s");
                t->worst_probe_ms = std::max(t->worst_probe_ms, ms);
            }
        }
        if (tick % 10 == 0) {
            std::printf("soak: %3d s  ", tick);
            for (Target* t : targets) {
                if (t->samples.empty()) continue;
                const Sample& s = t->samples.back();
                std::printf("%s: rss %ld KiB, %d fds, cpu %.1f s, %ld lines checked | ",
                            t->prefix.c_str(), s.rss_kb, s.fds, s.cpu, t->delivered.load());
            }
            std::printf("problems %d\n", problems.count());
            std::fflush(stdout);
        }
    }

    // The end: hostiles stop, the well-behaved clients finish and compare.
    h.stop = true;
    for (std::thread& th : bad)
        th.join();
    for (Target* t : targets)
        t->stop = true;
    for (Target* t : targets)
        CHECK(eventually([&] { return t->verified == kWellBehaved; }, 60000ms));

    struct Result {
        int end_fds;
        double idle_cpu;
        long rss_first, rss_second;
        double probe_after;
        std::optional<int> exit;
        bool sanitizer_report;
        bool asan;
        long closed, too_slow, handshake_timeouts, handshake_failed;  // from its log
    };
    std::map<std::string, Result> results;
    for (Target* t : targets) {
        Result r{};
        const pid_t pid = t->server.proc.pid();
        r.asan = asan_build(pid);
        eventually([&] { return open_fd_count(pid) == t->baseline_fds; }, 15000ms);
        r.end_fds = open_fd_count(pid);
        const double c0 = cpu_seconds(pid);
        std::this_thread::sleep_for(3s);
        r.idle_cpu = cpu_seconds(pid) - c0;
        // Memory: the peak after the warm-up's first and second halves.
        // (at least 10 s of warm-up, but never more than a third of a short run)
        const double warm = std::min(std::max(10.0, seconds * 0.25), seconds / 3.0);
        const double middle = warm + (seconds - warm) / 2;
        for (const Sample& s : t->samples) {
            if (s.t < warm) continue;
            long& peak = s.t < middle ? r.rss_first : r.rss_second;
            peak = std::max(peak, s.rss_kb);
        }
        results[t->name] = r;
    }
    for (Target* t : targets)
        t->release = true;
    for (std::thread& th : good)
        th.join();
    for (Target* t : targets) {
        Result& r = results[t->name];
        r.probe_after = probe(*t, tls);
        t->server.proc.signal(SIGTERM);
        r.exit = t->server.proc.wait(5000ms);
        const std::string log = t->server.proc.stderr_text();
        r.sanitizer_report = log.find("Sanitizer") != std::string::npos ||
                             log.find("runtime error") != std::string::npos;
        auto count = [&](const std::string& what) {
            long n = 0;
            for (auto at = log.find(what); at != std::string::npos; at = log.find(what, at + 1))
                ++n;
            return n;
        };
        // Each close is one log line, "... closed (REASON)" or "... closed: REASON".
        r.closed = count(" closed (") + count(") closed: ");
        r.too_slow = count("too slow: more than 1 MiB unsent");
        r.handshake_timeouts = count("TLS handshake timed out");
        r.handshake_failed = count("TLS handshake failed");
    }

    // The report.
    std::printf("\n== soak report: %d s, seed %u\n", seconds, seed);
    std::printf("hostile clients (both servers):");
    long total = 0;
    for (int k = 0; k < kinds; ++k) {
        std::printf("%s %s %ld", k ? "," : "", kKindNames[k], h.runs[k].load());
        total += h.runs[k];
    }
    std::printf("; %ld in all, %ld connects failed\n", total, h.connect_failures.load());
    for (Target* t : targets) {
        const Result& r = results[t->name];
        double peak_cpu = t->samples.empty() ? 0 : t->samples.back().cpu;
        std::printf(
            "%s: well-behaved %d clients, %ld lines sent, %ld deliveries checked (exactly once, "
            "in order)\n"
            "  descriptors: baseline %d, after the hostiles left %d\n"
            "  resident memory after warm-up: peak %ld KiB in the first half, %ld KiB in the "
            "second%s\n"
            "  CPU: %.1f s during the run, %.3f s in 3 s idle afterwards\n"
            "  newcomer probes: %d, slowest welcome %.0f ms; after the run %.0f ms\n"
            "  its log: %ld connections closed, %ld of them too slow (1 MiB unsent), %ld TLS "
            "handshakes timed out, %ld failed\n"
            "  SIGTERM: exit %d%s\n",
            t->name.c_str(), kWellBehaved, t->sent.load(), t->delivered.load(), t->baseline_fds,
            r.end_fds, r.rss_first, r.rss_second,
            r.asan ? " (ASan build: not judged; LeakSanitizer checks at exit)" : "", peak_cpu,
            r.idle_cpu, t->probes, t->worst_probe_ms, r.probe_after, r.closed, r.too_slow,
            r.handshake_timeouts, r.handshake_failed, r.exit.value_or(-1),
            r.sanitizer_report ? ", SANITIZER REPORT in its log" : "");
    }
    const auto listed = problems.list();
    std::printf("problems: %d\n", problems.count());
    for (const std::string& p : listed)
        std::printf("  %s\n", p.c_str());
    std::fflush(stdout);

    // The verdict.
    CHECK(problems.count() == 0);
    for (Target* t : targets) {
        const Result& r = results[t->name];
        INFO(t->name);
        CHECK(t->delivered > 0);
        CHECK(r.end_fds == t->baseline_fds);
        CHECK(r.idle_cpu < 0.15);  // 5% of one core while nothing happens
        CHECK(r.rss_first > 0);    // samples in both halves
        if (!r.asan) CHECK(r.rss_second <= r.rss_first + r.rss_first / 10 + 2048);
        CHECK(r.probe_after >= 0);
        CHECK(r.exit == 0);
        CHECK_FALSE(r.sanitizer_report);
    }
    for (int k = 0; k < kinds; ++k)
        CHECK_MESSAGE(h.runs[k] > 0, kKindNames[k] << " never ran");
}
