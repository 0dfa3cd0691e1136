// step2_multiclient/relay.hpp: what the select, epoll and TLS relays share.
//
// Read server.cpp first: it is the lesson (the select loop). This file holds
// what every relay needs the same way, so that `diff server.cpp
// server_epoll.cpp` shows only epoll and `diff server.cpp
// ../step3_tls/server.cpp` only TLS:
//
//   Connection  one object per client: its descriptor, its bounded output
//               queue, where it is in its life, its flow-control budget.
//               read_some/write_some are recv/sendmsg here; stage 3
//               overrides them with SSL_read/SSL_write.
//   Relay       carries out what the chat::Room decides (queue lines, close
//               politely, drop the too slow), accepts clients, and decides
//               before each read whether the room can take more.
//
// docs/02-multiclient.md#one-object-per-client
#pragma once

#include <sys/time.h>
#include <sys/uio.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "../common/daemon.hpp"
#include "../common/explain.hpp"
#include "../common/fd.hpp"
#include "../common/log.hpp"
#include "../common/options.hpp"
#include "../common/signals.hpp"
#include "chat.hpp"
#include "tuning.hpp"

namespace relay {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// [docs:relay-limits]
// At most this much is read from one client per wake-up, so one fast sender
// cannot starve the rest.
constexpr std::size_t kReadSize = 64 * 1024;
// Flow control (docs/02-multiclient.md#the-slow-reader): no client is read
// while a reader that earns it has more than kPauseReading queued. One read
// (kReadSize, each line at most 10 times longer once "nick: " is added) then
// still fits under chat::kMaxUnsent, so a reader that keeps up is never dropped.
constexpr std::size_t kPauseReading = 256 * 1024;
// A reader earns the right to hold the room back, up to kMaxHold, in two
// ways: each kBytesPerHoldMs its socket takes buys 1 ms (16 MiB/s buys all of
// it), and each ms the room runs (nobody holds it) buys kHoldPerRun ms, so a
// reader that takes a quarter of what the room sends keeps up however slow
// the machine is. The pause is billed to the readers it waits for.
constexpr auto kMaxHold = 200ms;
constexpr std::size_t kBytesPerHoldMs = 16 * 1024;
constexpr int kHoldPerRun = 3;
// A leaving client gets this long to take its last lines and close.
constexpr auto kCloseTimeout = 2s;
// SIGINT/SIGTERM: flush for at most this long, then close everything.
constexpr auto kShutdownFlush = 2s;
// accept() failed for lack of descriptors: look at the listener again after this.
constexpr auto kAcceptPause = 100ms;
// Refused ("server full") clients are closed politely too; at most this many
// at once, so that a flood of them cannot hold many descriptors.
constexpr std::size_t kMaxRefusing = 4;
// [/docs]

// The objects every part of the server needs, owned by run().
struct Context {
    common::Logger& log;
    common::Explain& explain;
    common::Signals& signals;
};

// What one read_some()/write_some() (or stage 3's handshake()) did.
struct IoResult {
    enum Status { ok, would_block, eof, error } status;
    std::size_t bytes = 0;
    std::string reason = {};  // why, for `error`
};

// What a relay's command line says: the options every server has, plus
// --max-clients.
struct Options {
    common::ServerOptions server;
    long max_clients;
};

// Parse argv: --port defaults to `port`, --max-clients N to `max_clients`
// (1 to `limit`). Bad usage: usage on stderr, exit 2.
Options parse_options(int argc, char** argv, const char* port, long max_clients, long limit);

// How long until `t` (not negative), as select() and epoll_wait() want it.
timeval timeval_until(Clock::time_point t);
int milliseconds_until(Clock::time_point t);

// Steps 1-4, as in stage 1 (listener.cpp), plus SOCK_NONBLOCK: accept()
// must never wait.
common::Fd open_listener(const common::ServerOptions& opts, Context& ctx);

// select() can watch only descriptors below FD_SETSIZE: throw when one of
// these is not.  docs/02-multiclient.md#fd_setsize
void require_below_fd_setsize(std::initializer_list<int> fds);

// epoll: every client is a descriptor. Raise the soft RLIMIT_NOFILE to the
// hard one, and log a note when even that is below max_clients.
void raise_descriptor_limit(common::Logger& log, long max_clients);

// Read and forget what a client sent that we will never process: closing a
// socket with unread input makes the kernel answer with RST instead of FIN,
// and the peer may then lose the last lines we sent it.
// docs/02-multiclient.md#closing-politely
void discard_input(int fd);

// One connected client. Its nick and input buffer live in the chat::Room,
// which knows it by `id`. docs/02-multiclient.md#one-object-per-client
class Connection {
  public:
    Connection(chat::ClientId id, common::Fd fd, std::string peer)
        : id_(id), fd_(std::move(fd)), peer_(std::move(peer)) {}
    virtual ~Connection() = default;
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    chat::ClientId id() const { return id_; }
    int fd() const { return fd_.get(); }
    const std::string& peer() const { return peer_; }

    // recv() whatever has arrived: bytes, EOF (the peer's FIN), "nothing
    // yet", or an error such as a reset.  docs/01-echo.md#recv
    virtual IoResult read_some(std::span<char> buffer);
    // Can another read in this wake-up find more (stage 3: buffered records)?
    virtual bool read_again() const { return false; }
    // Send as much of the queue as the kernel takes now, in one sendmsg().
    // docs/02-multiclient.md#partial-writes
    virtual IoResult write_some();
    // Our FIN, once everything is sent.  docs/01-echo.md#shutdown
    virtual IoResult shut_write();
    // Is what it sends chat (stage 3: not during the handshake)?
    virtual bool chatting() const { return !leaving; }
    virtual bool wants_write() const { return unsent() > 0 && !write_shut; }
    // Just before close() (stage 3: a last close_notify).
    virtual void before_close() {}

    void queue(chat::Chunk chunk);
    std::size_t unsent() const { return unsent_ + staged_; }

    // Where the connection is in its life.
    bool leaving = false;       // the Room let it go: flush, then close
    bool peer_eof = false;      // recv() returned 0
    bool write_shut = false;    // our FIN is out
    bool dead = false;          // close it at the end of this pass
    bool refused = false;       // server full: "* error: server full", then a polite close
    bool read_paused = false;   // flow control: its input waits in the kernel
    bool behind = false;        // in Relay::behind_ (more than kPauseReading queued)
    bool flush_listed = false;  // in Relay::to_flush_
    std::uint32_t watched = 1;  // epoll: what epoll_ctl registered it for (EPOLLIN)
    std::string close_reason;
    std::string nick;              // for log lines, kept after the Room has let it go
    Clock::time_point close_by{};  // a leaving client's deadline
    // Flow control: how much longer it may hold the others back.
    Clock::duration hold_budget = kMaxHold;
    Clock::duration room_ran_at_bill{};  // Relay::room_ran_ when it was last billed
    std::size_t drained = 0;             // bytes its socket took since the last bill
    // The two ways its budget refills (relay-limits above).
    void earn(std::size_t bytes_sent) {
        drained += bytes_sent;
        refill(std::chrono::microseconds(bytes_sent * 1000 / kBytesPerHoldMs));
    }
    void earn_room_ran(Clock::duration room_ran) {
        refill(kHoldPerRun * (room_ran - room_ran_at_bill));
        room_ran_at_bill = room_ran;
    }

  protected:
    void refill(Clock::duration earned) {
        hold_budget = std::min<Clock::duration>(kMaxHold, hold_budget + earned);
    }
    // The queue's front as iovecs, for sendmsg() or for a TLS record; returns
    // how many it filled.
    std::size_t gather(std::span<iovec> iov) const;
    // n bytes from the front have left the queue (sent).
    void consume(std::size_t n);
    // Stage 3: move up to `max` bytes from the queue's front into `record`;
    // they still count as unsent until unstage() (SSL_write took them).
    void stage(std::string& record, std::size_t max);
    void unstage() { staged_ = 0; }

  private:
    chat::ClientId id_;
    common::Fd fd_;
    std::string peer_;
    std::vector<chat::Chunk> queue_;  // shared lines, each sent once to this client
    std::size_t head_ = 0;            // queue_[head_] is the next to send
    std::size_t front_offset_ = 0;    // bytes of queue_[head_] already sent
    std::size_t unsent_ = 0;          // bytes queued and not yet sent
    std::size_t staged_ = 0;          // bytes moved out by stage(), not yet sent
};

// The part of the server that is the same whatever waits for the sockets.
// The stage file adds the loop: wait (select, epoll_wait), then call these.
class Relay {
  public:
    Relay(Context& ctx, common::Fd listener, long max_clients, int accept_batch);
    virtual ~Relay() = default;
    Relay(const Relay&) = delete;
    Relay& operator=(const Relay&) = delete;

    // HOST:PORT the listener is bound to, for the `listening on` line.
    std::string local_address() const;

  protected:
    // Before each wait: close what is due, flow control, memory. Returns when
    // the wait must end at the latest (nullopt: only a socket event matters).
    std::optional<Clock::time_point> before_wait(std::optional<Clock::time_point> deadline);
    // Should the loop ask for this client's input now?
    bool wants_read(const Connection& c) const {
        return !c.peer_eof && !(c.chatting() && c.read_paused);
    }
    bool accepting() const { return listener_ && !accept_paused_until_; }

    // Step 8: take waiting connections off the accept queue.
    void accept_clients();
    // What a stage does with a descriptor accept() gave it: stage 2 wraps it
    // in a Connection; nullptr refuses it (closed at once).
    virtual std::unique_ptr<Connection> make_connection(chat::ClientId id, common::Fd fd,
                                                        const std::string& peer);
    // A new Connection is in clients_: join the Room, or be refused.
    virtual void admitted(Connection& c);
    void join(Connection& c, std::string_view nick = {});
    void refuse(Connection& c);
    void refuse_at_once(common::Fd fd, const std::string& peer);

    // Step 9: the client is readable / writable. `must_read`: read even if
    // the room cannot take more (epoll: a hang-up is reported until read).
    virtual void on_readable(Connection& c, bool must_read = false);
    virtual void on_writable(Connection& c);
    // After each pass: one write to each client that got new lines, so they
    // leave now instead of after another wait; what the kernel does not take
    // waits for "writable".
    void flush_output();
    // Epoll's hook: what to wait for on this client may have changed.
    virtual void interest_changed(Connection&) {}

    // Every client, starting one further each pass: the first to be read in
    // a pass gets the room's headroom, so no client may always be first.
    template <typename F>
    void each_client(F&& f) {
        if (clients_.empty()) return;
        auto it = clients_.begin();
        std::advance(it, static_cast<long>(rotation_++ % clients_.size()));
        for (std::size_t i = 0; i < clients_.size(); ++i, ++it) {
            if (it == clients_.end()) it = clients_.begin();
            f(*it->second);
        }
    }
    void progress_close(Connection& c, Clock::time_point now);
    void apply(chat::Effects effects);
    void drop(Connection& c, chat::LostReason why, const std::string& reason);
    void mark_dead(Connection& c);
    void leave(Connection& c, const char* reason);
    void sweep();
    // Step 10: stop accepting, tell everyone, give them kShutdownFlush.
    Clock::time_point begin_shutdown();
    Connection* find(chat::ClientId id);

    Context& ctx_;
    common::Fd listener_;
    long max_clients_;
    int accept_batch_;
    chat::Room room_;
    // Looked up once per delivered line: a hash table, not a tree.
    std::unordered_map<chat::ClientId, std::unique_ptr<Connection>> clients_;
    bool stopping_ = false;
    std::size_t rotation_ = 0;  // where each_client() starts

  private:
    bool room_can_take(Clock::time_point now);
    void update_holds(Clock::time_point now);

    chat::ClientId next_id_ = 1;
    std::optional<Clock::time_point> accept_paused_until_;
    bool out_of_descriptors_ = false;       // the last accept() failed with EMFILE
    std::set<chat::ClientId> leaving_;      // clients with a close deadline
    std::vector<chat::ClientId> dead_;      // to close at the end of this pass
    std::vector<chat::ClientId> to_flush_;  // got new lines in this pass
    std::size_t refusing_ = 0;              // refused clients still being closed
    std::size_t refused_waiting_ = 0;       // refused, not yet told (stage 3: in the handshake)
    std::vector<chat::ClientId> behind_;    // more than kPauseReading queued
    std::deque<chat::ClientId> paused_;     // not read until the room can take more
    bool holding_ = false;                  // a reader holds the room back
    Clock::time_point holds_updated_{};     // when the budgets were last billed
    Clock::duration room_ran_{};            // how long, in all, nobody held the room
    std::optional<Clock::time_point> hold_ends_;  // when the first budget runs out
    tuning::MemoryTrim trim_;
};

// The process around a relay, the same in stages 2 and 3, so that a stage
// file's main() shows only what the stage adds: the log (stderr until
// --log-file or --daemon), --explain, the signal pipe (SIGINT/SIGTERM stop us,
// SIGHUP reopens the log); then `make_server(ctx)`, the stage's steps 1-4 and
// its Server; start_service (--daemon, --pidfile, --user, the `listening on`
// line: common/daemon.hpp); run() until SIGINT/SIGTERM; shut_down(). An error
// is one log line, e.g. "bind 0.0.0.0:7002: Address already in use", and
// exit status 1.
template <class MakeServer>
int serve(const common::ServerOptions& opts, MakeServer make_server) {
    common::Logger log;
    try {
        if (!opts.log_file.empty()) log.open_file(opts.log_file);
        common::Explain explain(opts.explain);
        common::Signals signals;
        Context ctx{log, explain, signals};
        auto server = make_server(ctx);  // a prvalue: the Server is built in place
        common::Service service = common::start_service(opts, log, server.local_address());
        server.run();
        server.shut_down();
        log.info("shut down");
        return 0;
    } catch (const std::exception& e) {
        log.fatal(e.what());
        return 1;
    }
}

}  // namespace relay
