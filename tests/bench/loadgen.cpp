// tests/bench/loadgen.cpp: the load generator behind `make bench`.
//
// One process, one epoll loop, any number of connections (plain TCP or TLS).
// Every scenario is bounded in time and prints one line of key=value pairs:
//
//   loadgen echo-rtt   PORT [--conns N] [--rounds M] [--bytes B]
//       N connections each do M round trips of B bytes: round trips/s, p50/p99
//   loadgen echo-bulk  PORT [--mbytes X]
//       one stream written and read at the same time: MB/s, content verified
//   loadgen relay      PORT [--clients N] [--lines M] [--bytes B] [--idle I]
//                      [--private | --commands] [--warmup K]
//                      [--proto chat|resp|nats|irc] [--ahead K | --unpaced]
//       N chat clients each send M lines; every delivery is checked: lost,
//       duplicated, out of order and corrupt counts (all must be 0). Lines
//       go to everyone, or with --private as /msg to one other active client,
//       or with --commands as an unknown command answered to its sender only
//       (chat-core work independent of the number of clients). --idle I more
//       clients join and only listen. --warmup K: the first K rounds are
//       checked but not measured (reported apart as server_warmup_*).
//   loadgen handshakes PORT --tls [--count N]
//       full TLS handshakes (no resumption): handshakes/s
//   loadgen idle       PORT [--clients N] [--hold S]
//       hold N connections: the server's memory per connection, its idle CPU
//   loadgen slow       PORT [--flooders F] [--slow-kib K | --never-reads]
//                      [--baseline S] [--phase S] [--part S] [--ahead K]
//       flooders, a chatter whose latency is measured, and one reader that
//       drains K KiB per 100 ms: throughput and latency with it and without
//   loadgen half-hello PORT [--count N]
//       N clients each send half a TLS ClientHello and stop, then close: the
//       server's memory idle, with them, and after they are gone
//
// On a 2-core machine the load generator saturates before a good server does,
// so with --server-pid PID every scenario also reports the server's own CPU
// (utime+stime, read as ns from /proc/PID/task/*/schedstat; of the whole process tree,
// so socat's and ncat's per-connection children count) per unit of work, and
// its resident memory. That is the figure to compare.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <dirent.h>
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "../../common/error.hpp"
#include "../../common/fd.hpp"
#include "../../common/net.hpp"

namespace {

using Clock = std::chrono::steady_clock;

Clock::time_point after_seconds(double s) {
    return Clock::now() +
           std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

double seconds_since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

// ---------------------------------------------------------------------------
// Options

struct Options {
    std::string scenario;
    std::string host = "127.0.0.1";
    int port = 0;
    pid_t server_pid = 0;
    double time_limit = 30;  // seconds, for the whole run
    bool tls = false;
    int conns = 1;           // echo-rtt
    long rounds = 1000;      // echo-rtt
    std::size_t bytes = 64;  // echo-rtt message, relay line (with its \n)
    long mbytes = 64;        // echo-bulk
    int clients = 10;        // relay, idle: active clients
    int idle = 0;            // relay: extra clients that only listen
    long lines = 100;        // relay: lines per active client
    long batch = 10;         // relay: lines per client per round
    long warmup = 0;         // relay: rounds checked but not measured
    bool private_msgs = false;
    bool commands = false;  // relay: each line is an unknown command, answered to its sender
    std::string welcome = "* welcome ";  // relay: the line that says "joined"; "" = none
    long count = 200;                    // handshakes
    int parallel = 4;                    // handshakes in flight
    double hold = 1;                     // idle: seconds to hold
    int sources = 8;                     // 127.0.0.x source addresses to spread over
    int window = 100;                    // relay, idle: connections joining at once
    // relay: the protocol spoken (chat: ours, one line per message; resp:
    // Redis SUBSCRIBE/PUBLISH over two connections per client; nats; irc).
    std::string proto = "chat";
    long ahead = 0;            // relay --ahead K: a sender stays at most K lines ahead of
                               // the average receiver of its lines (0: rounds of --batch)
    bool unpaced = false;      // relay: every line written as fast as the kernel takes it
    double connect_rate = 0;   // relay, idle: connections opened per second at most (0: any)
    int flooders = 5;          // slow: clients flooding the room
    long slow_kib = 0;         // slow: the slow reader drains this many KiB per 100 ms
    bool never_reads = false;  // slow: the slow reader never reads
    double baseline = 5;       // slow: seconds measured without the slow reader
    double phase = 20;         // slow: seconds measured with it
    double part = 5;           // slow: the first and last part compared, seconds
};

[[noreturn]] void usage(const char* why) {
    std::fprintf(
        stderr,
        "loadgen: %s\n"
        "usage: loadgen echo-rtt|echo-bulk|relay|handshakes|idle|slow|half-hello PORT [options]\n"
        "  --host H --server-pid PID --time-limit S --tls --conns N --rounds M\n"
        "  --bytes B --mbytes X --clients N --idle I --lines M --batch K --warmup K --private\n"
        "  --commands\n"
        "  --welcome PREFIX --count N --parallel K --hold S --sources K --window K\n"
        "  --proto chat|resp|nats|irc --ahead K --unpaced --connect-rate R\n"
        "  --flooders F --slow-kib K --never-reads --baseline S --phase S --part S\n",
        why);
    std::exit(2);
}

template <typename T>
T number(std::string_view name, const char* text) {
    T value{};
    std::string_view s(text);
    if constexpr (std::is_floating_point_v<T>) {
        try {
            std::size_t used = 0;
            value = static_cast<T>(std::stod(std::string(s), &used));
            if (used != s.size()) throw std::invalid_argument("trailing");
        } catch (const std::exception&) {
            usage((std::string(name) + ": not a number: " + text).c_str());
        }
    } else {
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
        if (ec != std::errc() || end != s.data() + s.size() || value < 0)
            usage((std::string(name) + ": not a count: " + text).c_str());
    }
    return value;
}

Options parse(int argc, char** argv) {
    if (argc < 3) usage("need a scenario and a port");
    Options o;
    o.scenario = argv[1];
    o.port = number<int>("PORT", argv[2]);
    for (int i = 3; i < argc; ++i) {
        const std::string_view a = argv[i];
        auto arg = [&]() -> const char* {
            if (i + 1 >= argc) usage((std::string(a) + " needs a value").c_str());
            return argv[++i];
        };
        if (a == "--host")
            o.host = arg();
        else if (a == "--server-pid")
            o.server_pid = number<pid_t>(a, arg());
        else if (a == "--time-limit")
            o.time_limit = number<double>(a, arg());
        else if (a == "--tls")
            o.tls = true;
        else if (a == "--conns")
            o.conns = number<int>(a, arg());
        else if (a == "--rounds")
            o.rounds = number<long>(a, arg());
        else if (a == "--bytes")
            o.bytes = number<std::size_t>(a, arg());
        else if (a == "--mbytes")
            o.mbytes = number<long>(a, arg());
        else if (a == "--clients")
            o.clients = number<int>(a, arg());
        else if (a == "--idle")
            o.idle = number<int>(a, arg());
        else if (a == "--lines")
            o.lines = number<long>(a, arg());
        else if (a == "--batch")
            o.batch = number<long>(a, arg());
        else if (a == "--warmup")
            o.warmup = number<long>(a, arg());
        else if (a == "--private")
            o.private_msgs = true;
        else if (a == "--commands")
            o.private_msgs = o.commands = true;
        else if (a == "--welcome")
            o.welcome = arg();
        else if (a == "--count")
            o.count = number<long>(a, arg());
        else if (a == "--parallel")
            o.parallel = number<int>(a, arg());
        else if (a == "--hold")
            o.hold = number<double>(a, arg());
        else if (a == "--sources")
            o.sources = number<int>(a, arg());
        else if (a == "--window")
            o.window = number<int>(a, arg());
        else if (a == "--proto")
            o.proto = arg();
        else if (a == "--ahead")
            o.ahead = number<long>(a, arg());
        else if (a == "--unpaced")
            o.unpaced = true;
        else if (a == "--connect-rate")
            o.connect_rate = number<double>(a, arg());
        else if (a == "--flooders")
            o.flooders = number<int>(a, arg());
        else if (a == "--slow-kib")
            o.slow_kib = number<long>(a, arg());
        else if (a == "--never-reads")
            o.never_reads = true;
        else if (a == "--baseline")
            o.baseline = number<double>(a, arg());
        else if (a == "--phase")
            o.phase = number<double>(a, arg());
        else if (a == "--part")
            o.part = number<double>(a, arg());
        else
            usage((std::string("unknown option ") + std::string(a)).c_str());
    }
    if (o.port <= 0 || o.port > 65535) usage("PORT out of range");
    if (o.proto != "chat" && o.proto != "resp" && o.proto != "nats" && o.proto != "irc")
        usage("--proto: chat, resp, nats or irc");
    if (o.proto != "chat" && o.private_msgs) usage("--private and --commands need --proto chat");
    if (o.bytes < 16 && o.scenario == "relay") usage("--bytes: at least 16 for relay lines");
    if (o.warmup < 0 || o.bytes == 0 || o.conns == 0 || o.batch == 0 || o.parallel == 0 ||
        o.sources == 0 || o.window == 0)
        usage("counts must be positive");
    return o;
}

// ---------------------------------------------------------------------------
// The server's CPU and memory, from /proc.

struct Usage {
    double cpu_s = 0;  // the tree's run time, reaped children included
    long rss_kb = 0;   // the tree's resident memory
    long minflt = 0;   // minor page faults: fresh pages touched (the tree's own)
    int procs = 0;
};

std::string slurp(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// Fields of /proc/PID/stat after the command name (which may hold spaces):
// index 0 is field 3 (state), so field N is at N - 3.
std::vector<std::string> stat_fields(pid_t pid) {
    const std::string s = slurp("/proc/" + std::to_string(pid) + "/stat");
    std::vector<std::string> f;
    const auto close = s.rfind(')');
    if (close == std::string::npos) return f;
    std::istringstream rest(s.substr(close + 2));
    for (std::string w; rest >> w;)
        f.push_back(w);
    return f;
}

Usage sample_tree(pid_t root) {
    Usage u;
    if (root <= 0) return u;
    static const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
    static const long page_kb = sysconf(_SC_PAGESIZE) / 1024;
    // Who is whose parent: the server and everything it forked.
    std::multimap<pid_t, pid_t> children;
    if (DIR* d = opendir("/proc")) {
        while (dirent* e = readdir(d)) {
            if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
            const pid_t pid = std::atoi(e->d_name);
            const auto f = stat_fields(pid);
            if (f.size() > 1) children.emplace(std::atoi(f[1].c_str()), pid);
        }
        closedir(d);
    }
    std::vector<pid_t> todo{root};
    while (!todo.empty()) {
        const pid_t pid = todo.back();
        todo.pop_back();
        const auto f = stat_fields(pid);
        if (f.size() < 22) continue;  // gone meanwhile
        ++u.procs;
        // schedstat's first field is utime+stime in ns (stat has it in 10 ms
        // ticks); it is per thread, so a threaded server (nats-server, Redis's
        // I/O threads) is the sum over /proc/PID/task/.
        double run_ns = 0;
        bool have_ns = false;
        const std::string tasks = "/proc/" + std::to_string(pid) + "/task";
        if (DIR* d = opendir(tasks.c_str())) {
            while (dirent* e = readdir(d)) {
                if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
                std::istringstream sched(slurp(tasks + "/" + e->d_name + "/schedstat"));
                double ns = 0;
                if (sched >> ns) {
                    run_ns += ns;
                    have_ns = true;
                }
            }
            closedir(d);
        }
        if (!have_ns) run_ns = (std::atof(f[11].c_str()) + std::atof(f[12].c_str())) / tick * 1e9;
        // cutime+cstime: children that have exited and been waited for.
        u.cpu_s += run_ns / 1e9 + (std::atof(f[13].c_str()) + std::atof(f[14].c_str())) / tick;
        u.rss_kb += std::atol(f[21].c_str()) * page_kb;
        u.minflt += std::atol(f[7].c_str());
        auto [b, e] = children.equal_range(pid);
        for (auto it = b; it != e; ++it)
            todo.push_back(it->second);
    }
    return u;
}

// ---------------------------------------------------------------------------
// TLS

struct SslCtxFree {
    void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslFree {
    void operator()(SSL* s) const { SSL_free(s); }
};

std::unique_ptr<SSL_CTX, SslCtxFree> make_client_ctx() {
    std::unique_ptr<SSL_CTX, SslCtxFree> ctx(SSL_CTX_new(TLS_client_method()));
    if (!ctx) throw std::runtime_error("SSL_CTX_new failed");
    SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
    // A benchmark measures the server's work, so we do not verify (that is
    // the stage 3 client's job), and every handshake is a full one.
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
    SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
    SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE |
                                    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    return ctx;
}

// ---------------------------------------------------------------------------
// Connections and the event loop

struct Conn {
    int id = 0;
    std::size_t slot = 0;  // index in Net's table, and the epoll cookie
    common::Fd fd;
    std::unique_ptr<SSL, SslFree> ssl;
    bool connecting = true;    // TCP handshake under way
    bool handshaking = false;  // TLS handshake under way
    bool open = false;         // ready for data
    bool closed = false;       // EOF or error seen
    bool want_out = false;     // EPOLLOUT registered
    bool ssl_wants_write = false;
    bool paused = false;  // not reading: the test reads it by hand (read_raw), or never
    std::string in;       // received, not yet consumed
    std::string out;      // to send
    std::size_t out_off = 0;
    std::uint64_t bytes_in = 0;
    Clock::time_point started;
};

class Net {
  public:
    explicit Net(const Options& o) : opt_(o), epoll_(::epoll_create1(EPOLL_CLOEXEC)) {
        common::check(epoll_.get(), "epoll_create1");
        if (o.tls) ctx_ = make_client_ctx();
        const auto addrs = common::resolve(o.host, std::to_string(o.port), false);
        addr_ = addrs.front();
        // Spread many connections over several loopback source addresses so
        // 10,000 of them (and their TIME_WAIT leftovers) never run out of ports.
        spread_ = addr_.family == AF_INET && o.host.rfind("127.", 0) == 0;
    }

    std::function<void(Conn&)> on_open;   // connected (and TLS handshake done)
    std::function<void(Conn&)> on_data;   // c.in grew
    std::function<void(Conn&)> on_close;  // EOF or error
    std::uint64_t connect_errors = 0;

    Conn& open(int id) {
        auto c = std::make_unique<Conn>();
        c->id = id;
        c->started = Clock::now();
        c->fd.reset(::socket(addr_.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        common::check(c->fd.get(), "socket");
        const int on = 1;
        ::setsockopt(c->fd.get(), IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
        if (spread_ && opt_.sources > 1) {
            ::setsockopt(c->fd.get(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &on, sizeof on);
            sockaddr_in src{};
            src.sin_family = AF_INET;
            src.sin_addr.s_addr = htonl(0x7f000001u + static_cast<unsigned>(id % opt_.sources));
            common::check(::bind(c->fd.get(), reinterpret_cast<sockaddr*>(&src), sizeof src),
                          "bind", "127.0.0.x");
        }
        if (::connect(c->fd.get(), addr_.sa(), addr_.length) < 0 && errno != EINPROGRESS)
            common::throw_errno("connect", common::format_address(addr_));
        const std::size_t slot = slot_for(std::move(c));
        conns_[slot]->slot = slot;
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT;
        ev.data.u64 = slot;
        conns_[slot]->want_out = true;
        common::check(::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, conns_[slot]->fd.get(), &ev),
                      "epoll_ctl", "ADD");
        return *conns_[slot];
    }

    void send(Conn& c, std::string_view data) {
        c.out.append(data);
        flush(c);
    }

    // Close and forget a connection.
    // (Deferred to the end of the wake-up: a callback may drop its own Conn.)
    void drop(Conn& c) {
        if (!c.closed) {
            c.closed = true;
            ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, c.fd.get(), nullptr);
        }
        dead_.push_back(c.slot);
    }
    void bury() {
        for (const std::size_t s : dead_) {
            conns_[s].reset();  // closes the descriptor
            free_.push_back(s);
        }
        dead_.clear();
    }

    // Every live connection.
    template <typename F>
    void each(F f) {
        for (auto& p : conns_)
            if (p) f(*p);
    }

    // Stop reading c: the kernel's buffers fill up, then the server's queue.
    void pause_reading(Conn& c) {
        if (c.paused || c.closed) return;
        c.paused = true;
        epoll_event ev{};
        ev.events = c.want_out ? EPOLLOUT : 0u;
        ev.data.u64 = c.slot;
        ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c.fd.get(), &ev);
    }
    // Read up to `max` bytes straight from the socket (over TLS, still
    // encrypted) and throw them away: a reader that drains slowly. Returns the
    // bytes read; on EOF or an error the connection is closed (on_close).
    std::size_t read_raw(Conn& c, std::size_t max) {
        char buf[16 * 1024];
        std::size_t got = 0;
        while (got < max && !c.closed) {
            const ssize_t n = ::recv(c.fd.get(), buf, std::min(sizeof buf, max - got), 0);
            if (n < 0 && common::is_transient(errno)) break;
            if (n <= 0) {
                fail(c);
                break;
            }
            got += static_cast<std::size_t>(n);
        }
        return got;
    }

    // Send close_notify (TLS) and FIN; the connection stays until EOF.
    void shutdown(Conn& c) {
        if (c.ssl) SSL_shutdown(c.ssl.get());
        ::shutdown(c.fd.get(), SHUT_WR);
    }

    // Run the loop until done() or the deadline; false on the deadline.
    bool run(const std::function<bool()>& done, Clock::time_point deadline) {
        std::vector<epoll_event> events(1024);
        while (!done()) {
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now())
                    .count();
            if (left <= 0) {
                bury();
                return false;
            }
            const int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()),
                                       static_cast<int>(std::min<long>(left, 50)));
            if (n < 0) {
                if (errno == EINTR) continue;
                common::throw_errno("epoll_wait");
            }
            for (int i = 0; i < n; ++i) {
                Conn* c = conns_[events[i].data.u64].get();
                if (c == nullptr) continue;
                handle(*c, events[i].events);
            }
            bury();
            if (idle_hook) idle_hook();
        }
        bury();
        return true;
    }
    std::function<void()> idle_hook;  // after every wake-up

    std::size_t live() const {
        return static_cast<std::size_t>(
            std::count_if(conns_.begin(), conns_.end(), [](auto& p) { return p != nullptr; }));
    }

  private:
    std::size_t slot_for(std::unique_ptr<Conn> c) {
        if (!free_.empty()) {
            const std::size_t s = free_.back();
            free_.pop_back();
            conns_[s] = std::move(c);
            return s;
        }
        conns_.push_back(std::move(c));
        return conns_.size() - 1;
    }

    void watch_out(Conn& c, bool on) {
        if (c.want_out == on || c.closed) return;
        c.want_out = on;
        epoll_event ev{};
        ev.events = (c.paused ? 0u : EPOLLIN) | (on ? EPOLLOUT : 0u);
        ev.data.u64 = c.slot;
        ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c.fd.get(), &ev);
    }

    void fail(Conn& c) {
        if (c.closed) return;
        c.closed = true;
        ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, c.fd.get(), nullptr);
        if (on_close) on_close(c);
    }

    void handle(Conn& c, std::uint32_t events) {
        if (c.connecting) {
            int err = 0;
            socklen_t len = sizeof err;
            ::getsockopt(c.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
            if (err != 0) {
                ++connect_errors;
                fail(c);
                return;
            }
            if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) return;
            c.connecting = false;
            if (ctx_) {
                c.ssl.reset(SSL_new(ctx_.get()));
                SSL_set_fd(c.ssl.get(), c.fd.get());
                SSL_set_connect_state(c.ssl.get());
                c.handshaking = true;
            } else {
                became_open(c);
                if (c.closed) return;
            }
        }
        if (c.handshaking) {
            ERR_clear_error();
            const int r = SSL_do_handshake(c.ssl.get());
            if (r == 1) {
                c.handshaking = false;
                became_open(c);
                if (c.closed) return;
            } else {
                const int e = SSL_get_error(c.ssl.get(), r);
                if (e == SSL_ERROR_WANT_READ)
                    watch_out(c, false);
                else if (e == SSL_ERROR_WANT_WRITE)
                    watch_out(c, true);
                else {
                    ++connect_errors;
                    fail(c);
                }
                return;
            }
        }
        if (!c.paused && (events & (EPOLLIN | EPOLLERR | EPOLLHUP))) read_some(c);
        if (!c.closed) flush(c);
    }

    void became_open(Conn& c) {
        c.open = true;
        watch_out(c, false);
        if (on_open) on_open(c);
    }

    void read_some(Conn& c) {
        char buf[64 * 1024];
        const std::size_t before = c.in.size();
        bool eof = false;
        for (int round = 0; round < 16; ++round) {
            ssize_t got;
            if (c.ssl) {
                ERR_clear_error();
                got = SSL_read(c.ssl.get(), buf, sizeof buf);
                if (got <= 0) {
                    const int e = SSL_get_error(c.ssl.get(), static_cast<int>(got));
                    if (e == SSL_ERROR_WANT_READ) break;
                    if (e == SSL_ERROR_WANT_WRITE) {
                        c.ssl_wants_write = true;
                        watch_out(c, true);
                        break;
                    }
                    eof = true;
                    break;
                }
            } else {
                got = ::recv(c.fd.get(), buf, sizeof buf, 0);
                if (got < 0 && common::is_transient(errno)) break;
                if (got <= 0) {
                    eof = true;
                    break;
                }
            }
            c.in.append(buf, static_cast<std::size_t>(got));
            c.bytes_in += static_cast<std::uint64_t>(got);
            if (static_cast<std::size_t>(got) < sizeof buf && !c.ssl) break;
        }
        if (c.in.size() > before && on_data) on_data(c);
        if (eof && !c.closed) fail(c);
    }

  public:
    void flush(Conn& c) {
        if (!c.open || c.closed) return;
        while (c.out_off < c.out.size()) {
            const std::size_t len = std::min<std::size_t>(c.out.size() - c.out_off, 1 << 20);
            ssize_t n;
            if (c.ssl) {
                ERR_clear_error();
                n = SSL_write(c.ssl.get(), c.out.data() + c.out_off, static_cast<int>(len));
                if (n <= 0) {
                    const int e = SSL_get_error(c.ssl.get(), static_cast<int>(n));
                    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
                        watch_out(c, e == SSL_ERROR_WANT_WRITE);
                        return;
                    }
                    fail(c);
                    return;
                }
            } else {
                n = ::send(c.fd.get(), c.out.data() + c.out_off, len, MSG_NOSIGNAL);
                if (n < 0) {
                    if (common::is_transient(errno)) {
                        watch_out(c, true);
                        return;
                    }
                    fail(c);
                    return;
                }
            }
            c.out_off += static_cast<std::size_t>(n);
        }
        c.out.clear();
        c.out_off = 0;
        if (!c.ssl_wants_write) watch_out(c, false);
    }

  private:
    const Options& opt_;
    common::Fd epoll_;
    std::unique_ptr<SSL_CTX, SslCtxFree> ctx_;
    common::Address addr_;
    bool spread_ = false;
    std::vector<std::unique_ptr<Conn>> conns_;
    std::vector<std::size_t> free_;
    std::vector<std::size_t> dead_;
};

// ---------------------------------------------------------------------------
// Reporting

struct Report {
    std::vector<std::pair<std::string, std::string>> kv;
    template <typename T>
    void add(const std::string& k, T v) {
        std::ostringstream s;
        if constexpr (std::is_floating_point_v<T>) {
            s.setf(std::ios::fixed);
            s.precision(v != 0 && v < 10 && v > -10 ? 3 : 1);
        }
        s << v;
        kv.emplace_back(k, s.str());
    }
    void print() const {
        std::string line;
        for (const auto& [k, v] : kv)
            line += (line.empty() ? "" : " ") + k + "=" + v;
        std::printf("%s\n", line.c_str());
        std::fflush(stdout);
    }
};

double percentile(std::vector<double>& v, double p) {
    if (v.empty()) return 0;
    const auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
    return v[k];
}

// A byte pattern with a prime period, so any offset can be produced and
// checked with one memcmp against a precomputed buffer.
constexpr std::size_t kPeriod = 65521;
const std::string& pattern() {
    static const std::string p = [] {
        std::string s(kPeriod + 1024 * 1024, '\0');
        std::uint32_t x = 2463534242u;
        for (std::size_t i = 0; i < kPeriod; ++i) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            s[i] = static_cast<char>(x);
        }
        for (std::size_t i = kPeriod; i < s.size(); ++i)
            s[i] = s[i - kPeriod];
        return s;
    }();
    return p;
}
std::string_view pattern_at(std::uint64_t offset, std::size_t len) {
    return std::string_view(pattern()).substr(offset % kPeriod, len);
}

// ---------------------------------------------------------------------------
// Scenarios

// Measure the server around a piece of work: CPU and memory are read while
// the connections are still open, so per-connection children (socat, ncat
// --sh-exec) are alive and counted (ncat ignores SIGCHLD, and the time of a
// child reaped that way never reaches its parent's cutime).
struct Measure {
    pid_t pid;
    Usage before;
    Usage during;
    Clock::time_point t0;
    explicit Measure(pid_t p) : pid(p), before(sample_tree(p)), t0(Clock::now()) {}
    double elapsed() const { return seconds_since(t0); }
    // Server CPU seconds over the window; call once the work is done.
    double finish() {
        during = sample_tree(pid);
        return during.cpu_s - before.cpu_s;
    }
};

void add_server(Report& r, const Options& o, double cpu_s, const Measure& m) {
    if (o.server_pid <= 0) return;
    r.add("server_cpu_s", cpu_s);
    r.add("server_rss_kb", m.during.rss_kb);
    r.add("server_page_faults", m.during.minflt - m.before.minflt);
    r.add("server_procs", m.during.procs);
}

// N connections, each M round trips of B bytes, one outstanding at a time.
int echo_rtt(const Options& o) {
    Net net(o);
    const auto deadline = after_seconds(o.time_limit);
    struct State {
        long done = 0;
        std::uint64_t offset = 0;
        Clock::time_point sent;
    };
    std::vector<State> st(static_cast<std::size_t>(o.conns));
    std::vector<double> lat;
    lat.reserve(static_cast<std::size_t>(std::min<long>(o.rounds * o.conns, 10'000'000)));
    long open = 0, failed = 0, finished = 0, bad = 0;
    auto send_round = [&](Conn& c) {
        State& s = st[static_cast<std::size_t>(c.id)];
        s.sent = Clock::now();
        net.send(c, pattern_at(s.offset, o.bytes));
    };
    net.on_open = [&](Conn&) { ++open; };
    net.on_data = [&](Conn& c) {
        State& s = st[static_cast<std::size_t>(c.id)];
        if (c.in.size() < o.bytes) return;
        if (c.in.size() > o.bytes || c.in != pattern_at(s.offset, o.bytes)) ++bad;
        c.in.clear();
        lat.push_back(std::chrono::duration<double, std::micro>(Clock::now() - s.sent).count());
        s.offset += o.bytes;
        if (++s.done < o.rounds)
            send_round(c);
        else
            ++finished;
    };
    net.on_close = [&](Conn& c) {
        if (!c.open)
            ++failed;
        else
            ++finished;
    };
    for (int i = 0; i < o.conns; ++i)
        net.open(i);
    net.run([&] { return open + failed >= o.conns; }, deadline);
    if (open == 0) throw std::runtime_error("no connection could be opened");

    Measure m(o.server_pid);
    net.each([&](Conn& c) {
        if (c.open && !c.closed) send_round(c);
    });
    const bool complete = net.run([&] { return finished >= open; }, deadline);
    const double elapsed = m.elapsed();
    const double cpu = m.finish();

    const auto n = static_cast<double>(lat.size());
    Report r;
    r.add("scenario", std::string("echo-rtt"));
    r.add("conns", open);
    r.add("bytes", o.bytes);
    r.add("round_trips", lat.size());
    r.add("rt_per_s", n / elapsed);
    r.add("p50_us", percentile(lat, 0.50));
    r.add("p99_us", percentile(lat, 0.99));
    r.add("bad", bad);
    r.add("complete", complete ? 1 : 0);
    add_server(r, o, cpu, m);
    if (o.server_pid > 0 && n > 0) r.add("server_us_per_rt", cpu * 1e6 / n);
    r.print();
    return bad == 0 ? 0 : 1;
}

// One connection: write X MiB and read the echo at the same time, checking
// every byte. Plain TCP only, and straight from the pattern buffer to the
// socket and back, so the load generator copies as little as the server.
int echo_bulk(const Options& o) {
    const auto deadline = after_seconds(o.time_limit);
    const auto addr = common::resolve(o.host, std::to_string(o.port), false).front();
    common::Fd fd(::socket(addr.family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    common::check(fd.get(), "socket");
    common::check(::connect(fd.get(), addr.sa(), addr.length), "connect",
                  common::format_address(addr));
    common::set_nonblocking(fd.get());
    common::Fd ep(::epoll_create1(EPOLL_CLOEXEC));
    common::check(ep.get(), "epoll_create1");
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT;
    common::check(::epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd.get(), &ev), "epoll_ctl");

    const std::uint64_t total = static_cast<std::uint64_t>(o.mbytes) << 20;
    std::uint64_t sent = 0, received = 0, bad = 0;
    bool eof = false, writing = true;
    std::vector<char> buf(256 * 1024);
    Measure m(o.server_pid);
    while (received < total && !eof && Clock::now() < deadline) {
        epoll_event got{};
        if (::epoll_wait(ep.get(), &got, 1, 50) <= 0) continue;
        if ((got.events & EPOLLOUT) && sent < total) {
            const auto len =
                static_cast<std::size_t>(std::min<std::uint64_t>(total - sent, 1 << 20));
            const std::string_view chunk = pattern_at(sent, len);
            const ssize_t n = ::send(fd.get(), chunk.data(), chunk.size(), MSG_NOSIGNAL);
            if (n > 0)
                sent += static_cast<std::uint64_t>(n);
            else if (n < 0 && !common::is_transient(errno))
                common::throw_errno("send");
        }
        if (got.events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
            const ssize_t n = ::recv(fd.get(), buf.data(), buf.size(), 0);
            if (n == 0)
                eof = true;
            else if (n < 0 && !common::is_transient(errno))
                common::throw_errno("recv");
            else if (n > 0) {
                const auto k = static_cast<std::size_t>(n);
                if (std::string_view(buf.data(), k) != pattern_at(received, k)) ++bad;
                received += k;
            }
        }
        if (writing && sent >= total) {  // stop asking for EPOLLOUT
            writing = false;
            ev.events = EPOLLIN;
            ::epoll_ctl(ep.get(), EPOLL_CTL_MOD, fd.get(), &ev);
        }
    }
    const double elapsed = m.elapsed();
    const double cpu = m.finish();

    Report r;
    r.add("scenario", std::string("echo-bulk"));
    r.add("bytes", received);
    r.add("mb_per_s", static_cast<double>(received) / 1e6 / elapsed);
    r.add("bad", bad);
    r.add("complete", received == total ? 1 : 0);
    add_server(r, o, cpu, m);
    if (o.server_pid > 0 && received > 0)
        r.add("server_ms_per_mb", cpu * 1e3 / (static_cast<double>(received) / 1e6));
    r.print();
    return bad == 0 ? 0 : 1;
}

// The CPU time this process has used so far: the load generator's own cost,
// reported next to the server's so a reader sees which of them saturated.
double own_cpu_s() {
    rusage ru{};
    ::getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// How each protocol frames one message to the room (`text` never holds a
// newline), and where a received line carries one.
enum class Proto { chat, resp, nats, irc };

Proto proto_of(const std::string& name) {
    if (name == "resp") return Proto::resp;
    if (name == "nats") return Proto::nats;
    if (name == "irc") return Proto::irc;
    return Proto::chat;
}

void frame(Proto p, std::string& out, std::string_view text) {
    switch (p) {
        case Proto::chat:
            break;
        case Proto::resp:  // PUBLISH room TEXT, as a RESP array of bulk strings
            out += "*3\r\n$7\r\nPUBLISH\r\n$4\r\nroom\r\n$";
            out += std::to_string(text.size());
            out += "\r\n";
            break;
        case Proto::nats:
            out += "PUB room ";
            out += std::to_string(text.size());
            out += "\r\n";
            break;
        case Proto::irc:
            out += "PRIVMSG #room :";
            break;
    }
    out += text;
    out += p == Proto::chat ? "\n" : "\r\n";
}

// The message a received line carries ("@S:Q:xxx..."), or empty.
std::string_view payload(Proto p, std::string_view line) {
    switch (p) {
        case Proto::chat:  // "<nick> @S:Q:xxx" (or the error line of --commands)
            if (const auto at = line.find('@'); at != std::string_view::npos)
                return line.substr(at);
            return {};
        case Proto::resp:  // the bulk string's own line, after "$N"
        case Proto::nats:  // the payload's own line, after "MSG room 1 N"
            return line.starts_with('@') ? line : std::string_view{};
        case Proto::irc: {  // ":nick!user@host PRIVMSG #room :@S:Q:xxx"
            if (!line.starts_with(':')) return {};
            const auto sp = line.find(' ');
            if (sp == std::string_view::npos || line.substr(sp + 1, 8) != "PRIVMSG ") return {};
            const auto colon = line.find(" :", sp + 1);
            return colon == std::string_view::npos ? std::string_view{} : line.substr(colon + 2);
        }
    }
    return {};
}

// The chat relay: R = clients + idle connections join; then each active
// client sends `lines` lines, and every delivery is checked. A line's text is
// "@SENDER:SEQ:xxxx..." (bytes - 1 characters). The same room in every
// protocol: ours (chat), Redis pub/sub (resp: each client SUBSCRIBEs on one
// connection and PUBLISHes on another), NATS (SUB and PUB on one connection,
// "echo":false so a client does not get its own messages) and IRC (JOIN and
// PRIVMSG, which never echoes). Lines go out in rounds of --batch (each round
// waits for every delivery), or with --ahead K as a stream where a sender is
// at most K lines ahead of the average receiver of its lines, or --unpaced as
// fast as the kernel takes them.
int relay(const Options& o, bool idle_only) {
    const int A = idle_only ? 0 : o.clients;
    const int I = idle_only ? o.clients : o.idle;
    const int R = A + I;
    const long M = idle_only ? 0 : o.lines;
    const std::size_t text_len = o.bytes - 1;
    const Proto P = proto_of(o.proto);
    const bool streaming = o.ahead > 0 || o.unpaced;
    Net net(o);
    const auto start = Clock::now();
    const auto deadline = after_seconds(o.time_limit);
    const Usage base = sample_tree(o.server_pid);

    struct Client {
        Conn* c = nullptr;    // receives (and sends, but for resp)
        Conn* pub = nullptr;  // resp: the connection that PUBLISHes
        bool joined = false;
        bool subscribed = false;  // resp
        bool dropped = false;     // closed by the server while messages flowed
        std::string nick;
        std::string note;  // the last line that was not a message (a drop's reason)
    };
    std::vector<Client> cl(static_cast<std::size_t>(R));  // idle first, then active
    auto active_index = [&](int id) { return id - I; };
    int opened = 0, joined = 0, failed = 0, dropped = 0;
    double join_s = 0;
    auto last_byte = Clock::now();
    bool messages = false;

    // Deliveries: a bit per (receiver, sender, seq) when broadcasting, per
    // (sender, seq) for private messages (each has one receiver).
    std::vector<bool> got(o.private_msgs ? static_cast<std::size_t>(A) * M
                                         : static_cast<std::size_t>(R) * A * M);
    std::vector<std::int32_t> last(static_cast<std::size_t>(R) * std::max(A, 1), -1);
    std::uint64_t ok = 0, dup = 0, ooo = 0, corrupt = 0, misdelivered = 0, self = 0;
    std::vector<std::uint64_t> to(static_cast<std::size_t>(R), 0);  // delivered to receiver
    std::vector<std::uint64_t> from(static_cast<std::size_t>(std::max(A, 1)), 0);  // of sender
    std::vector<long> sent(static_cast<std::size_t>(std::max(A, 1)), 0);
    std::vector<long> top(static_cast<std::size_t>(std::max(A, 1)), 0);  // highest seq seen + 1
    long total_sent = 0;
    auto target_of = [&](int sender, long seq) {  // private: a ring over the active clients
        if (o.commands) return sender;            // the error comes back to the sender
        return (sender + 1 + static_cast<int>(seq % std::max(A - 1, 1))) % A;
    };

    auto deliver = [&](int recv_id, std::string_view t) {
        int s = -1;
        long q = -1;
        t.remove_prefix(1);  // '@'
        auto p1 = std::from_chars(t.data(), t.data() + t.size(), s);
        if (p1.ec != std::errc() || p1.ptr == t.data() + t.size() || *p1.ptr != ':') {
            ++corrupt;
            return;
        }
        const char* qs = p1.ptr + 1;
        auto p2 = std::from_chars(qs, t.data() + t.size(), q);
        if (p2.ec != std::errc() || p2.ptr == t.data() + t.size() || *p2.ptr != ':' ||
            t.size() + 1 != text_len || s < 0 || s >= A || q < 0 || q >= M ||
            std::string_view(p2.ptr + 1, static_cast<std::size_t>(t.data() + t.size() - p2.ptr - 1))
                    .find_first_not_of('x') != std::string_view::npos) {
            ++corrupt;
            return;
        }
        std::size_t bit;
        if (o.private_msgs) {
            if (recv_id < I || active_index(recv_id) != target_of(s, q)) {
                ++misdelivered;
                return;
            }
            bit = static_cast<std::size_t>(s) * M + q;
        } else {
            if (recv_id >= I && active_index(recv_id) == s) {
                // Redis delivers a client's messages to its own subscription
                // too: counted apart, not as deliveries.
                if (P == Proto::resp)
                    ++self;
                else
                    ++misdelivered;  // our own line came back
                return;
            }
            bit = (static_cast<std::size_t>(recv_id) * A + s) * M + q;
        }
        auto& l = last[static_cast<std::size_t>(recv_id) * A + s];
        if (got[bit]) {
            ++dup;
            return;
        }
        got[bit] = true;
        ++ok;
        ++to[static_cast<std::size_t>(recv_id)];
        ++from[static_cast<std::size_t>(s)];
        top[static_cast<std::size_t>(s)] = std::max(top[static_cast<std::size_t>(s)], q + 1);
        if (q < l) ++ooo;
        l = std::max<std::int32_t>(l, static_cast<std::int32_t>(q));
    };

    auto mark_joined = [&](Client& me) {
        me.joined = true;
        ++joined;
        join_s = seconds_since(start);
    };
    // What each protocol says to join the room, once connected.
    net.on_open = [&](Conn& c) {
        if (c.id >= R) {  // resp: the publishing connection is up
            Client& me = cl[static_cast<std::size_t>(c.id - R)];
            me.pub = &c;
            mark_joined(me);
            return;
        }
        Client& me = cl[static_cast<std::size_t>(c.id)];
        me.c = &c;
        switch (P) {
            case Proto::chat:
                if (o.welcome.empty()) mark_joined(me);
                break;
            case Proto::resp:
                net.send(c, "*2\r\n$9\r\nSUBSCRIBE\r\n$4\r\nroom\r\n");
                break;
            case Proto::nats:  // the PONG says the SUB before it is in place
                net.send(
                    c,
                    "CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":false,"
                    "\"lang\":\"c++\",\"version\":\"1\",\"protocol\":1}\r\nSUB room 1\r\nPING\r\n");
                break;
            case Proto::irc:
                me.nick = "n" + std::to_string(c.id);
                net.send(c, "NICK " + me.nick + "\r\nUSER " + me.nick + " 0 * :bench\r\n");
                break;
        }
    };
    net.on_close = [&](Conn& c) {
        Client& me = cl[static_cast<std::size_t>(c.id >= R ? c.id - R : c.id)];
        if (!me.joined) {
            if (c.id < R || !me.dropped) ++failed;
        } else if (!me.dropped) {
            me.dropped = true;
            ++dropped;
        }
        // (For resp the other connection stays: a client whose subscription
        // Redis closed still publishes.)
        (c.id >= R ? me.pub : me.c) = nullptr;
    };
    // Drops: when, and how far behind the dropped reader was (lines sent by
    // the others that it had not received).
    double first_drop_s = -1;
    long drop_depth_min = -1, drop_depth_max = -1;
    std::string drop_note;
    auto sent_by = [&](int id) { return id >= I ? sent[static_cast<std::size_t>(id - I)] : 0L; };
    // Lines a sender has handed to the kernel: those it wrote, less what is
    // still in its own buffer (every framed line has the same length).
    std::size_t framed_len = 1;
    std::function<Conn*(int)> sender_of;
    auto written_by = [&](int s) {
        const long n = sent[static_cast<std::size_t>(s)];
        const Conn* c = sender_of ? sender_of(s) : nullptr;
        if (c == nullptr || c->closed) return std::min(n, top[static_cast<std::size_t>(s)]);
        return n - static_cast<long>((c->out.size() - c->out_off) / framed_len);
    };
    auto on_drop = [&](int id) {
        long others = 0;
        for (int s = 0; s < A; ++s)
            if (I + s != id) others += written_by(s);
        const long depth = others - static_cast<long>(to[static_cast<std::size_t>(id)]);
        if (first_drop_s < 0) {
            first_drop_s = seconds_since(start);
            drop_note = cl[static_cast<std::size_t>(id)].note;
        }
        drop_depth_min = drop_depth_min < 0 ? depth : std::min(drop_depth_min, depth);
        drop_depth_max = std::max(drop_depth_max, depth);
    };
    auto on_line = [&](Conn& c, Client& me, std::string_view line) {
        if (c.id >= R) return;  // resp: PUBLISH's replies (":N", receivers counted)
        if (messages) {
            if (const auto t = payload(P, line); !t.empty()) {
                deliver(c.id, t);
                return;
            }
        }
        switch (P) {
            case Proto::chat:
                if (!me.joined && !o.welcome.empty() && line.starts_with(o.welcome)) {
                    mark_joined(me);
                    std::string_view rest = line.substr(o.welcome.size());
                    me.nick = std::string(rest.substr(0, rest.find(' ')));
                    return;
                }
                break;
            case Proto::resp:  // "*3 $9 subscribe $4 room :1": the ":1" ends it
                if (!me.subscribed && line.starts_with(':')) {
                    me.subscribed = true;
                    net.open(R + c.id);
                    return;
                }
                break;
            case Proto::nats:
                if (line == "PING") {
                    net.send(c, "PONG\r\n");
                    return;
                }
                if (!me.joined && line == "PONG") {
                    mark_joined(me);
                    return;
                }
                break;
            case Proto::irc:
                if (line.starts_with("PING ")) {
                    net.send(c, "PONG " + std::string(line.substr(5)) + "\r\n");
                    return;
                }
                if (const auto sp = line.find(' '); line.starts_with(':') && sp != line.npos) {
                    const auto cmd = line.substr(sp + 1, 4);
                    if (cmd == "001 ") {
                        net.send(c, "JOIN #room\r\n");
                        return;
                    }
                    if (cmd == "366 " && !me.joined) {  // end of the names: in the channel
                        mark_joined(me);
                        return;
                    }
                    if (cmd == "JOIN" || cmd == "353 ") return;
                }
                break;
        }
        // A notice a server sends before it closes a client: ours "* ...",
        // NATS "-ERR 'Slow Consumer...'", IRC "ERROR :..." (Redis sends none).
        if (messages &&
            (line.starts_with("* ") || line.starts_with("-ERR") || line.starts_with("ERROR")))
            me.note = std::string(line.substr(0, 60));
    };
    net.on_data = [&](Conn& c) {
        last_byte = Clock::now();
        Client& me = cl[static_cast<std::size_t>(c.id >= R ? c.id - R : c.id)];
        std::size_t pos = 0;
        while (true) {
            const auto nl = c.in.find('\n', pos);
            if (nl == std::string::npos) break;
            std::string_view line(c.in.data() + pos, nl - pos);
            if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
            pos = nl + 1;
            on_line(c, me, line);
        }
        c.in.erase(0, pos);
    };
    // Join: at most --window clients opened and not yet joined at a time,
    // kept below the server's listen backlog, so that no SYN is dropped
    // (which would cost that client 1 s); with --connect-rate, at most that
    // many opened per second.
    auto open_more = [&] {
        while (opened < R && opened - joined - failed < o.window &&
               (o.connect_rate <= 0 || opened < seconds_since(start) * o.connect_rate + 1))
            net.open(opened++);
    };
    net.idle_hook = open_more;
    open_more();
    const bool all_joined = net.run([&] { return joined + failed >= R; }, deadline);
    // Settle: the join notices stop flowing (and, before measuring memory,
    // a server that hands freed memory back a second later has done so).
    const double quiet = idle_only || I > 0 ? 1.5 : 0.3;
    net.run([&] { return seconds_since(last_byte) > quiet; }, deadline);
    const Usage joined_usage = sample_tree(o.server_pid);

    Report r;
    r.add("scenario", std::string(idle_only ? "idle" : "relay"));
    r.add("proto", o.proto);
    r.add("clients", A);
    r.add("idle", I);
    r.add("joined", joined);
    r.add("join_s", join_s);
    r.add("join_complete", all_joined && failed == 0 ? 1 : 0);
    if (o.server_pid > 0) {
        r.add("server_rss_base_kb", base.rss_kb);
        r.add("server_rss_joined_kb", joined_usage.rss_kb);
        r.add("server_join_cpu_s", joined_usage.cpu_s - base.cpu_s);
        if (joined > 0)
            r.add("server_bytes_per_client",
                  static_cast<double>(joined_usage.rss_kb - base.rss_kb) * 1024 / joined);
    }

    if (idle_only) {
        // Hold the connections and see what the server spends doing nothing.
        Measure m(o.server_pid);
        net.idle_hook = nullptr;
        const auto until = after_seconds(o.hold);
        net.run([&] { return Clock::now() >= until; },
                std::min(until, deadline) + std::chrono::seconds(1));
        const double cpu = m.finish();
        r.add("held_s", m.elapsed());
        if (o.server_pid > 0) r.add("server_idle_cpu_ms", cpu * 1e3);
        r.print();
        return all_joined && failed == 0 ? 0 : 1;
    }
    if (!all_joined) {
        r.print();
        return 1;
    }

    // Messages.
    const std::string pad(text_len, 'x');
    auto text = [&](int s, long q) {
        std::string t = "@" + std::to_string(s) + ":" + std::to_string(q) + ":";
        t += pad.substr(0, text_len > t.size() ? text_len - t.size() : 0);
        return t;
    };
    auto sender = [&](int s) {
        Client& me = cl[static_cast<std::size_t>(I + s)];
        return P == Proto::resp ? me.pub : me.c;
    };
    sender_of = sender;
    {
        std::string one;
        frame(P, one, text(0, 0));
        framed_len = one.size();
    }
    auto add_line = [&](std::string& burst, int s, long q) {
        if (o.commands) {
            burst += '/';  // "/@S:Q:xxx": "* error: unknown command /@S:Q:xxx"
        } else if (o.private_msgs) {
            burst += "/msg ";
            burst += cl[static_cast<std::size_t>(I + target_of(s, q))].nick;
            burst += ' ';
        }
        frame(P, burst, text(s, q));
    };
    const std::uint64_t per_line = o.private_msgs ? 1 : static_cast<std::uint64_t>(R - 1);
    std::uint64_t expected = 0;
    messages = true;
    net.on_close = [&, old = net.on_close](Conn& c) {
        const int id = c.id >= R ? c.id - R : c.id;
        const bool was = cl[static_cast<std::size_t>(id)].dropped;
        old(c);
        if (!was && cl[static_cast<std::size_t>(id)].dropped) on_drop(id);
    };
    net.idle_hook = nullptr;
    // The first --warmup rounds are measured apart: the first lines after a
    // burst of joins find the server's caches cold and its heap full of the
    // join's freed memory, a one-off cost, reported as server_warmup_*.
    Measure m(o.server_pid);
    const double own0 = own_cpu_s();
    double warmup_cpu = 0;
    std::uint64_t warmup_msgs = 0, all_delivered = 0;
    bool complete = true;
    if (!streaming) {
        for (long first = 0; first < M; first += o.batch) {
            const long end = std::min(M, first + o.batch);
            if (o.warmup > 0 && first == o.warmup * o.batch) {
                warmup_cpu = m.finish();
                warmup_msgs = ok;
                m = Measure(o.server_pid);
            }
            for (int s = 0; s < A; ++s) {
                Conn* c = sender(s);
                if (c == nullptr) continue;
                std::string burst;
                for (long q = first; q < end; ++q)
                    add_line(burst, s, q);
                net.send(*c, burst);
                sent[static_cast<std::size_t>(s)] = end;
                total_sent += end - first;
                expected += per_line * static_cast<std::uint64_t>(end - first);
            }
            last_byte = Clock::now();
            // The round is over when everything arrived, or nothing more comes.
            if (!net.run([&] { return ok >= expected || seconds_since(last_byte) > 0.5; },
                         deadline)) {
                complete = false;
                break;
            }
        }
        // Something missing: give stragglers 2 s more before calling them lost.
        if (ok < expected)
            net.run([&] { return ok >= expected || seconds_since(last_byte) > 2; }, deadline);
    } else {
        // A stream: each sender writes whatever its bound allows, after every
        // wake-up of the loop.
        auto pump = [&] {
            const double receivers = std::max(1, R - 1 - dropped);
            for (int s = 0; s < A; ++s) {
                Conn* c = sender(s);
                auto& n = sent[static_cast<std::size_t>(s)];
                if (c == nullptr || c->closed || n >= M) continue;
                long limit = M;
                if (!o.unpaced) {
                    const auto avg = static_cast<long>(
                        static_cast<double>(from[static_cast<std::size_t>(s)]) / receivers);
                    limit = std::min(M, avg + o.ahead);
                }
                if (n >= limit) continue;
                std::string burst;
                for (long q = n; q < limit; ++q)
                    add_line(burst, s, q);
                total_sent += limit - n;
                n = limit;
                net.send(*c, burst);
            }
        };
        // Done when every sender has written its lines (or is gone) and every
        // receiver still connected has everything sent by the others.
        auto done = [&] {
            for (int s = 0; s < A; ++s) {
                const Conn* c = sender(s);
                if (c != nullptr && !c->closed && sent[static_cast<std::size_t>(s)] < M)
                    return false;
            }
            for (int id = 0; id < R; ++id) {
                const Client& me = cl[static_cast<std::size_t>(id)];
                if (me.dropped) continue;
                if (static_cast<long>(to[static_cast<std::size_t>(id)]) < total_sent - sent_by(id))
                    return false;
            }
            return true;
        };
        net.idle_hook = pump;
        last_byte = Clock::now();
        pump();
        complete = net.run([&] { return done() || seconds_since(last_byte) > 2; }, deadline);
        net.idle_hook = nullptr;
        // A sender the server dropped may have lines it never got out: count
        // only those somebody received.
        total_sent = 0;
        for (int s = 0; s < A; ++s) {
            auto& n = sent[static_cast<std::size_t>(s)];
            n = written_by(s);
            total_sent += n;
        }
        expected = 0;
        std::uint64_t to_dropped = 0, due_dropped = 0;
        for (int id = 0; id < R; ++id) {
            const auto due = static_cast<std::uint64_t>(total_sent - sent_by(id));
            if (cl[static_cast<std::size_t>(id)].dropped) {
                due_dropped += due;
                to_dropped += to[static_cast<std::size_t>(id)];
            } else {
                expected += due;
            }
        }
        all_delivered = ok;
        ok -= std::min(ok, to_dropped);  // counted below for the clients still there
        r.add("lost_dropped", due_dropped - std::min(due_dropped, to_dropped));
        r.add("delivered_dropped", to_dropped);
    }
    const double elapsed = m.elapsed();
    const double cpu = m.finish();
    const double own = own_cpu_s() - own0;
    r.add("lines", M);
    r.add("bytes", o.bytes);
    r.add("private", o.private_msgs ? 1 : 0);
    r.add("commands", o.commands ? 1 : 0);
    r.add("pacing", std::string(o.unpaced ? "none" : streaming ? "ahead" : "rounds"));
    if (streaming && !o.unpaced) r.add("ahead", o.ahead);
    r.add("expected", expected);
    r.add("delivered", ok);
    r.add("lost", expected - std::min(expected, ok));
    r.add("duplicated", dup);
    r.add("out_of_order", ooo);
    r.add("corrupt", corrupt);
    r.add("misdelivered", misdelivered);
    if (P == Proto::resp) r.add("self_delivered", self);
    r.add("dropped", dropped);
    if (dropped > 0) {
        r.add("first_drop_s", first_drop_s);
        r.add("drop_depth_min", drop_depth_min);
        r.add("drop_depth_max", drop_depth_max);
        std::string note = drop_note.empty() ? "(none)" : drop_note;
        std::replace(note.begin(), note.end(), ' ', '_');
        r.add("drop_note", note);
    }
    r.add("complete", complete ? 1 : 0);
    // Every delivery counts for the CPU per message, the dropped clients' too.
    const std::uint64_t measured = std::max(ok, all_delivered) - std::min(ok, warmup_msgs);
    r.add("elapsed_s", elapsed);
    r.add("msgs_per_s", static_cast<double>(measured) / elapsed);
    r.add("loadgen_cpu_s", own);
    r.add("loadgen_busy", own / elapsed);  // 1.0: the load generator used a whole core
    if (measured > 0) r.add("loadgen_ns_per_msg", own * 1e9 / static_cast<double>(measured));
    add_server(r, o, cpu, m);
    if (o.server_pid > 0 && measured > 0)
        r.add("server_ns_per_msg", cpu * 1e9 / static_cast<double>(measured));
    if (o.server_pid > 0 && warmup_msgs > 0) {
        r.add("warmup_rounds", o.warmup);
        r.add("server_warmup_ms", warmup_cpu * 1e3);
        r.add("server_warmup_ns_per_msg", warmup_cpu * 1e9 / static_cast<double>(warmup_msgs));
        r.add("server_ns_per_msg_all", (cpu + warmup_cpu) * 1e9 / static_cast<double>(ok));
    }
    r.print();
    return 0;
}

// One slow-draining reader: `flooders` clients send lines (each at most
// --ahead lines ahead of the average honest receiver) and read everything; a
// chatter sends a short line every 50 ms, and the first flooder measures when
// it arrives. First --baseline seconds as they are; then one more client joins
// and drains --slow-kib KiB every 100 ms (straight from the socket, so over
// TLS it reads records it never decrypts), or with --never-reads nothing at
// all, for --phase seconds. Both phases in the same run, against the same
// server: honest lines/s (flooders' lines delivered to the flooders and the
// chatter), the chatter's latency (p50, p99; p99 of the first and the last
// --part seconds, to see it grow), whether the slow reader was dropped (its
// "left" notice), and every honest delivery checked: lost, duplicated, out
// of order.
int slow(const Options& o) {
    const int F = o.flooders;
    const int C = F;      // the chatter's id (and sender number)
    const int S = F + 1;  // the slow reader's id
    const std::size_t text_len = o.bytes - 1;
    if (F < 2) usage("slow: at least 2 flooders");
    Net net(o);
    const auto deadline = after_seconds(o.time_limit);
    struct Client {
        Conn* c = nullptr;
        bool joined = false;
        std::string nick;
    };
    std::vector<Client> cl(static_cast<std::size_t>(F + 2));
    int joined = 0, failed = 0, honest_dropped = 0;
    // Honest deliveries: the next sequence number expected per (receiver, sender).
    const auto senders = static_cast<std::size_t>(F + 1);
    std::vector<long> next(senders * senders, 0);
    std::vector<std::uint64_t> from(static_cast<std::size_t>(F), 0);
    std::vector<long> sent(static_cast<std::size_t>(F), 0);
    std::uint64_t honest = 0, lost = 0, dup = 0, corrupt = 0;
    std::vector<Clock::time_point> chat_sent;
    std::vector<double> chat_ms;  // each chat line's latency, -1 until it arrives
    int phase = 0;                // 0 joining, 1 baseline, 2 with the slow reader
    Clock::time_point phase_at[3];
    std::uint64_t honest_at[3] = {0, 0, 0};
    double slow_left_s = -1;  // its "left" notice, seconds into phase 2
    double slow_closed_s = -1;
    std::uint64_t slow_read = 0;
    auto last_drain = Clock::now(), last_chat = Clock::now();

    auto on_line = [&](int id, std::string_view line) {
        Client& me = cl[static_cast<std::size_t>(id)];
        if (!me.joined) {
            if (line.starts_with(o.welcome)) {
                me.joined = true;
                ++joined;
                std::string_view rest = line.substr(o.welcome.size());
                me.nick = std::string(rest.substr(0, rest.find(' ')));
            }
            return;
        }
        const auto at = line.find('@');
        if (at == std::string_view::npos) {  // a notice: is it the slow reader leaving?
            const std::string& slow_nick = cl[static_cast<std::size_t>(S)].nick;
            if (id == 0 && phase == 2 && slow_left_s < 0 && !slow_nick.empty() &&
                line.find("* " + slow_nick + " left") != std::string_view::npos)
                slow_left_s = seconds_since(phase_at[2]);
            return;
        }
        if (id == S) return;
        std::string_view t = line.substr(at + 1);
        int s = -1;
        long q = -1;
        auto p1 = std::from_chars(t.data(), t.data() + t.size(), s);
        if (p1.ec != std::errc() || p1.ptr == t.data() + t.size() || *p1.ptr != ':' || s < 0 ||
            s > C || s == id) {
            ++corrupt;
            return;
        }
        auto p2 = std::from_chars(p1.ptr + 1, t.data() + t.size(), q);
        if (p2.ec != std::errc() || q < 0) {
            ++corrupt;
            return;
        }
        auto& n = next[static_cast<std::size_t>(id) * senders + static_cast<std::size_t>(s)];
        if (q < n) {
            ++dup;  // already seen (or out of order: the same here, in one stream)
            return;
        }
        lost += static_cast<std::uint64_t>(q - n);
        n = q + 1;
        if (s == C) {
            if (id == 0 && static_cast<std::size_t>(q) < chat_ms.size())
                chat_ms[static_cast<std::size_t>(q)] =
                    std::chrono::duration<double, std::milli>(
                        Clock::now() - chat_sent[static_cast<std::size_t>(q)])
                        .count();
            return;
        }
        ++honest;
        ++from[static_cast<std::size_t>(s)];
    };
    net.on_open = [&](Conn& c) { cl[static_cast<std::size_t>(c.id)].c = &c; };
    net.on_close = [&](Conn& c) {
        Client& me = cl[static_cast<std::size_t>(c.id)];
        me.c = nullptr;
        if (!me.joined)
            ++failed;
        else if (c.id == S)
            slow_closed_s = phase == 2 ? seconds_since(phase_at[2]) : 0;
        else
            ++honest_dropped;
    };
    net.on_data = [&](Conn& c) {
        std::size_t pos = 0;
        while (true) {
            const auto nl = c.in.find('\n', pos);
            if (nl == std::string::npos) break;
            std::string_view line(c.in.data() + pos, nl - pos);
            pos = nl + 1;
            on_line(c.id, line);
        }
        c.in.erase(0, pos);
    };

    const std::string pad(text_len, 'x');
    auto pump = [&] {
        for (int s = 0; s < F; ++s) {
            Conn* c = cl[static_cast<std::size_t>(s)].c;
            if (c == nullptr) continue;
            auto& n = sent[static_cast<std::size_t>(s)];
            // F receivers: the other flooders and the chatter.
            const long limit = static_cast<long>(from[static_cast<std::size_t>(s)] /
                                                 static_cast<std::uint64_t>(F)) +
                               o.ahead;
            if (n >= limit) continue;
            std::string burst;
            for (; n < limit; ++n) {
                std::string t = "@" + std::to_string(s) + ":" + std::to_string(n) + ":";
                t += pad.substr(0, text_len > t.size() ? text_len - t.size() : 0);
                frame(Proto::chat, burst, t);
            }
            net.send(*c, burst);
        }
    };
    auto chat = [&] {
        Conn* c = cl[static_cast<std::size_t>(C)].c;
        if (c == nullptr) return;
        last_chat = Clock::now();
        const std::string t =
            "@" + std::to_string(C) + ":" + std::to_string(chat_sent.size()) + ":chatter";
        chat_sent.push_back(last_chat);
        chat_ms.push_back(-1);
        net.send(*c, t + "\n");
    };

    // Join the flooders and the chatter.
    for (int id = 0; id <= C; ++id)
        net.open(id);
    if (!net.run([&] { return joined + failed > C; }, deadline) || failed > 0)
        throw std::runtime_error("the flooders and the chatter could not all join");
    bool slow_opened = false, over = false;
    phase = 1;
    phase_at[1] = Clock::now();
    net.idle_hook = [&] {
        const auto now = Clock::now();
        if (phase == 1 && !slow_opened && seconds_since(phase_at[1]) >= o.baseline) {
            honest_at[2] = honest;  // (end of the baseline; phase 2 starts at the welcome)
            phase_at[0] = now;      // (when the baseline ended)
            slow_opened = true;
            net.open(S);
        }
        Client& sr = cl[static_cast<std::size_t>(S)];
        if (phase == 1 && sr.joined) {
            net.pause_reading(*sr.c);
            phase = 2;
            phase_at[2] = now;
            honest_at[1] = honest_at[2];
            honest_at[2] = honest;
            last_drain = now;
        }
        if (phase == 2 && seconds_since(phase_at[2]) >= o.phase) over = true;
        if (phase == 2 && !o.never_reads && sr.c != nullptr &&
            now - last_drain >= std::chrono::milliseconds(100)) {
            last_drain += std::chrono::milliseconds(100);
            slow_read += net.read_raw(*sr.c, static_cast<std::size_t>(o.slow_kib) * 1024);
        }
        if (now - last_chat >= std::chrono::milliseconds(50)) chat();
        pump();
    };
    const auto base_honest0 = honest;
    net.idle_hook();
    const bool complete = net.run([&] { return over; }, deadline);
    const auto end = Clock::now();
    const std::uint64_t honest_end = honest;
    if (phase < 2) throw std::runtime_error("the slow reader never joined");

    // Latencies by phase; a line that never arrived counts as waiting until the end.
    std::vector<double> base_ms, all_ms, first_ms, last_ms;
    for (std::size_t q = 0; q < chat_sent.size(); ++q) {
        const double ms =
            chat_ms[q] >= 0 ? chat_ms[q]
                            : std::chrono::duration<double, std::milli>(end - chat_sent[q]).count();
        if (chat_sent[q] < phase_at[0]) {
            base_ms.push_back(ms);
        } else if (chat_sent[q] >= phase_at[2]) {
            const double at = std::chrono::duration<double>(chat_sent[q] - phase_at[2]).count();
            all_ms.push_back(ms);
            if (at < o.part) first_ms.push_back(ms);
            if (at >= o.phase - o.part) last_ms.push_back(ms);
        }
    }
    const double base_s = std::chrono::duration<double>(phase_at[0] - phase_at[1]).count();
    const double slow_s = std::chrono::duration<double>(end - phase_at[2]).count();
    Report r;
    r.add("scenario", std::string("slow"));
    r.add("flooders", F);
    r.add("slow_kib", o.never_reads ? -1L : o.slow_kib);
    r.add("ahead", o.ahead);
    r.add("baseline_s", base_s);
    r.add("phase_s", slow_s);
    r.add("base_lines_per_s", static_cast<double>(honest_at[1] - base_honest0) / base_s);
    r.add("lines_per_s", static_cast<double>(honest_end - honest_at[2]) / slow_s);
    r.add("base_p50_ms", percentile(base_ms, 0.50));
    r.add("base_p99_ms", percentile(base_ms, 0.99));
    r.add("p50_ms", percentile(all_ms, 0.50));
    r.add("p99_ms", percentile(all_ms, 0.99));
    r.add("first_p99_ms", percentile(first_ms, 0.99));
    r.add("last_p99_ms", percentile(last_ms, 0.99));
    r.add("max_ms", all_ms.empty() ? 0.0 : *std::max_element(all_ms.begin(), all_ms.end()));
    r.add("slow_read_kb", static_cast<double>(slow_read) / 1024);
    r.add("slow_left_s", slow_left_s);  // -1: never dropped
    r.add("slow_closed_s", slow_closed_s);
    r.add("slow_dropped", slow_left_s >= 0 || slow_closed_s >= 0 ? 1 : 0);
    r.add("honest_dropped", honest_dropped);
    r.add("lost", lost);
    r.add("duplicated", dup);
    r.add("corrupt", corrupt);
    r.add("complete", complete ? 1 : 0);
    if (o.server_pid > 0) r.add("server_rss_kb", sample_tree(o.server_pid).rss_kb);
    r.print();
    return 0;
}

// Memory after abandoned TLS handshakes: --count connections each send the
// first half of a ClientHello and stop; then all of them close. The server's
// resident memory idle (after one full handshake, so that OpenSSL's one-off
// allocations are in it), with them connected, and once they are gone (when
// it has stopped changing for 1 s, at most 5 s); then a fresh client must
// still complete a handshake.
int half_hello(const Options& o) {
    const auto deadline = after_seconds(o.time_limit);
    const auto ctx = make_client_ctx();
    auto client_hello = [&] {
        std::unique_ptr<SSL, SslFree> ssl(SSL_new(ctx.get()));
        BIO* rbio = BIO_new(BIO_s_mem());
        BIO* wbio = BIO_new(BIO_s_mem());
        SSL_set_bio(ssl.get(), rbio, wbio);  // ssl owns them now
        SSL_set_connect_state(ssl.get());
        SSL_do_handshake(ssl.get());  // writes the ClientHello, wants the answer
        char* data = nullptr;
        const long len = BIO_get_mem_data(wbio, &data);
        return std::string(data, static_cast<std::size_t>(std::max(len, 0L)));
    };
    // One full handshake with a fresh connection: does it still work?
    auto full_handshake = [&] {
        Options t = o;
        t.tls = true;
        Net net(t);
        bool done = false, ok = false;
        net.on_open = [&](Conn& c) {
            ok = true;
            net.shutdown(c);
        };
        net.on_data = [](Conn& c) { c.in.clear(); };
        net.on_close = [&](Conn&) { done = true; };
        net.open(0);
        net.run([&] { return done; }, std::min(deadline, after_seconds(5)));
        return ok;
    };
    auto settled_rss = [&] {  // the same figure for 1 s (5 samples), or 5 s
        long last = -1;
        int same = 0;
        for (int i = 0; i < 25 && same < 5; ++i) {
            const long now = sample_tree(o.server_pid).rss_kb;
            same = now == last ? same + 1 : 0;
            last = now;
            ::usleep(200'000);
        }
        return last;
    };
    const bool warm = full_handshake();
    const long idle_kb = settled_rss();

    long peak_kb = 0;
    int connected = 0, closed_early = 0;
    {
        Options t = o;
        t.tls = false;  // the half ClientHello is written by hand
        Net net(t);
        long opened = 0;
        net.on_open = [&](Conn& c) {
            ++connected;
            const std::string hello = client_hello();
            net.send(c, std::string_view(hello).substr(0, hello.size() / 2));
        };
        net.on_data = [](Conn& c) { c.in.clear(); };
        net.on_close = [&](Conn& c) {
            if (c.open) ++closed_early;
        };
        net.idle_hook = [&] {
            while (opened < o.count && opened - connected < o.window)
                net.open(static_cast<int>(opened++));
        };
        net.idle_hook();
        net.run([&] { return connected + static_cast<long>(net.connect_errors) >= o.count; },
                deadline);
        // Let the server read them all.
        const auto until = after_seconds(1);
        net.run([&] { return Clock::now() >= until; }, deadline);
        peak_kb = sample_tree(o.server_pid).rss_kb;
    }  // every connection closes here
    const long after_kb = settled_rss();
    const bool fresh = full_handshake();
    Report r;
    r.add("scenario", std::string("half-hello"));
    r.add("count", o.count);
    r.add("connected", connected);
    r.add("closed_early", closed_early);
    r.add("warm_handshake", warm ? 1 : 0);
    r.add("server_rss_idle_kb", idle_kb);
    r.add("server_rss_held_kb", peak_kb);
    r.add("server_rss_after_kb", after_kb);
    if (idle_kb > 0)
        r.add("after_vs_idle", static_cast<double>(after_kb) / static_cast<double>(idle_kb));
    r.add("fresh_handshake", fresh ? 1 : 0);
    r.print();
    return fresh ? 0 : 1;
}

// Full TLS handshakes, `parallel` at a time: connect, handshake, close_notify,
// wait for the server to close.
int handshakes(const Options& o) {
    Net net(o);
    const auto deadline = after_seconds(o.time_limit);
    long started = 0, done = 0, ended = 0;
    net.on_open = [&](Conn& c) {
        ++done;
        net.shutdown(c);
    };
    net.on_close = [&](Conn& c) {
        ++ended;
        net.drop(c);
    };
    net.on_data = [](Conn& c) { c.in.clear(); };
    net.idle_hook = [&] {
        while (started < o.count && started - ended < o.parallel)
            net.open(static_cast<int>(started++));
    };
    Measure m(o.server_pid);
    net.idle_hook();
    const bool complete = net.run([&] { return ended >= o.count; }, deadline);
    const double elapsed = m.elapsed();
    const double cpu = m.finish();
    Report r;
    r.add("scenario", std::string("handshakes"));
    r.add("tls", o.tls ? 1 : 0);
    r.add("handshakes", done);
    r.add("failed", static_cast<long>(net.connect_errors));
    r.add("hs_per_s", static_cast<double>(done) / elapsed);
    r.add("complete", complete ? 1 : 0);
    add_server(r, o, cpu, m);
    if (o.server_pid > 0 && done > 0)
        r.add("server_ms_per_hs", cpu * 1e3 / static_cast<double>(done));
    r.print();
    return done > 0 ? 0 : 1;
}
}  // namespace

int main(int argc, char** argv) {
    const Options o = parse(argc, argv);
    try {
        struct rlimit rl {};
        if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            ::setrlimit(RLIMIT_NOFILE, &rl);
        }
        common::ignore_sigpipe();
        if (o.scenario == "echo-rtt") return echo_rtt(o);
        if (o.scenario == "echo-bulk") return echo_bulk(o);
        if (o.scenario == "relay") return relay(o, false);
        if (o.scenario == "idle") return relay(o, true);
        if (o.scenario == "handshakes") return handshakes(o);
        if (o.scenario == "slow") return slow(o);
        if (o.scenario == "half-hello") return half_hello(o);
        usage(("unknown scenario " + o.scenario).c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "loadgen %s: %s\n", o.scenario.c_str(), e.what());
        return 1;
    }
}
