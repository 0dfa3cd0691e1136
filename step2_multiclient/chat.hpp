// chat.hpp: the chat protocol with no I/O at all ("sans-I/O").
//
// A Room knows who is online, what each one has typed so far, and the rules
// of the chat protocol (docs/protocol.md#lines). It never touches a socket. The server tells it
// what happened (a client joined, these bytes arrived, EOF, the client was
// lost) and gets back Effects: which line goes to which client, and which
// clients to close. The select server, the epoll server and the TLS server of
// stage 3 are then only event loops that move bytes between sockets and this
// one Room. docs/02-multiclient.md#the-chat-core
//
// A relayed line is formatted once and shared by every receiver: a Chunk is a
// std::shared_ptr<const std::string>, so 1000 receivers hold one string.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../common/text.hpp"

namespace chat {

// [docs:chat-limits]
// Limits from docs/protocol.md#lines.
constexpr std::size_t kMaxLine = 4096;           // bytes per line, without "\r\n"
constexpr std::size_t kMaxUnsent = 1024 * 1024;  // a client's unsent output before it is dropped
constexpr std::size_t kMaxNick = 16;
// [/docs]

// The server's own name for a connection, never negative (it may use the
// descriptor: it removes the client from the Room before closing that).
using ClientId = std::int64_t;

// One or more complete lines, each ending in '\n', ready for the wire.
using Chunk = std::shared_ptr<const std::string>;

struct Delivery {
    ClientId to;
    Chunk data;
};

// What the server should do after an event, in order.
struct Effects {
    std::vector<Delivery> deliveries;
    // Close these clients once what is queued for them has been sent. They
    // have already left the Room: nothing more will be delivered to them.
    std::vector<ClientId> closes;
    // Events worth a log line ("guest-1 is now bob").
    std::vector<std::string> log;
};

// Why a client is gone when the server (not the protocol) ended it.
enum class LostReason {
    error,     // reset, write error: others read "* NICK left"
    too_slow,  // unsent output passed kMaxUnsent: "* NICK left (too slow)"
};

// The lines that do not depend on a Room.
Chunk server_full();                     // "* error: server full\n"
Chunk shutting_down();                   // "* server shutting down\n"
bool valid_nick(std::string_view name);  // [A-Za-z0-9_-]{1,16}

class Room {
  public:
    // A client is ready to chat (after the TLS handshake in stage 3). It is
    // named guest-N, or `nick` when given (stage 3: a certificate's CN); an
    // invalid or taken `nick` gets "* error: ..." and a close.
    Effects join(ClientId id, std::string_view nick = {});

    // Bytes the client sent, exactly as recv() returned them.
    Effects receive(ClientId id, std::string_view bytes);

    // The client sent EOF: a last unterminated line counts, then it leaves
    // (the server flushes its queue, then closes).
    Effects end_of_input(ClientId id);

    // The server lost the client (reset, write error, too slow). Nothing is
    // sent to it any more; the others are told.
    Effects lost(ClientId id, LostReason why);

    // Server shutdown: "* server shutting down" to every member.
    Effects shutdown();

    bool contains(ClientId id) const { return members_.count(id) != 0; }
    // The client's nick, or "" when it is not in the Room.
    std::string nick(ClientId id) const;
    std::size_t size() const { return members_.size(); }

  private:
    struct Member {
        std::string nick;
        common::LineFramer framer{kMaxLine};
    };

    void handle_line(ClientId id, std::string_view line, Effects& out);
    void command(ClientId id, std::string_view line, Effects& out);
    void leave(ClientId id, std::string_view notice, Effects& out);
    void to_one(ClientId id, Chunk data, Effects& out) const;
    void to_all_but(ClientId id, const Chunk& data, Effects& out) const;
    ClientId find(std::string_view nick) const;  // -1 when nobody has it

    // The members three ways, each for what it does fast, so that a line
    // costs the same with 10,000 members as with 10: by id and by nick are
    // hash tables (one lookup, whatever the size), and a plain array in join
    // order is what a notice to everyone and /who walk through.
    std::unordered_map<ClientId, Member> members_;
    std::unordered_map<std::string, ClientId> by_nick_;  // lower-cased nick -> id
    std::vector<ClientId> join_order_;
    std::uint64_t next_guest_ = 1;  // guest-N: never reused
};

}  // namespace chat
