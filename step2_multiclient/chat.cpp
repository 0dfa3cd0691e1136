// chat.cpp: the rules of the chat protocol (docs/protocol.md#commands). No sockets here.
#include "chat.hpp"

#include <algorithm>
#include <initializer_list>

#include "../common/text.hpp"

namespace chat {
namespace {

// One line for the wire: the pieces joined, then '\n'. The string is sized
// once, so a line costs one allocation for its text (and one for the shared
// count), not one per `+`: every relayed message passes through here.
Chunk make(std::initializer_list<std::string_view> pieces) {
    std::size_t size = 1;
    for (std::string_view piece : pieces)
        size += piece.size();
    std::string text;
    text.reserve(size);
    for (std::string_view piece : pieces)
        text += piece;
    text += '\n';
    return std::make_shared<const std::string>(std::move(text));
}

// A client's own bytes quoted back in an error line: escaped like the
// clients print them (`\x1b`, `\u202e`), so the server never sends a raw
// control byte it did not choose, even to the one who sent it.
std::string quoted(std::string_view from_client) {
    return common::escape_controls(from_client);
}

char lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

// Nicks are unique ignoring case: "Bob" and "bob" are the same nick.
std::string lowered(std::string_view nick) {
    std::string key(nick);
    std::transform(key.begin(), key.end(), key.begin(), lower);
    return key;
}

// "/msg bob hi there" -> ("/msg", "bob hi there"); "/who" -> ("/who", "").
// A word ends at a space or a tab, as a user of nc would expect.
std::pair<std::string_view, std::string_view> split_word(std::string_view line) {
    // One pass (find_first_of(" \t") would call memchr once per character).
    const auto space =
        std::find_if(line.begin(), line.end(), [](char c) { return c == ' ' || c == '\t'; });
    if (space == line.end()) return {line, {}};
    const auto at = static_cast<std::size_t>(space - line.begin());
    return {line.substr(0, at), line.substr(at + 1)};
}

const char* const kHelp[] = {
    "* commands:",
    "*   /nick NAME       change your name (1-16 of A-Z a-z 0-9 _ -)",
    "*   /msg NAME TEXT   send TEXT to NAME only",
    "*   /who             list who is online",
    "*   /quit            leave",
    "*   /help            this list",
    "* any other line is sent to everyone else",
};

}  // namespace

Chunk server_full() {
    static const Chunk line = make({"* error: server full"});
    return line;
}

Chunk shutting_down() {
    static const Chunk line = make({"* server shutting down"});
    return line;
}

bool valid_nick(std::string_view name) {
    if (name.empty() || name.size() > kMaxNick) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '-';
    });
}

Effects Room::join(ClientId id, std::string_view nick) {
    Effects out;
    std::string name;
    if (!nick.empty()) {
        if (!valid_nick(nick)) {
            to_one(id, make({"* error: invalid nick ", quoted(nick)}), out);
            out.closes.push_back(id);
            return out;
        }
        if (find(nick) >= 0) {
            to_one(id, make({"* error: nick ", nick, " is taken"}), out);
            out.closes.push_back(id);
            return out;
        }
        name = nick;
    } else {
        // Someone may have taken "guest-7" with /nick: skip to a free number.
        do {
            name = "guest-" + std::to_string(next_guest_++);
        } while (find(name) >= 0);
    }
    members_[id] = Member{name, common::LineFramer(kMaxLine)};
    by_nick_[lowered(name)] = id;
    join_order_.push_back(id);
    to_one(id, make({"* welcome ", name, " (", std::to_string(members_.size()), " online)"}), out);
    to_all_but(id, make({"* ", name, " joined"}), out);
    return out;
}

Effects Room::receive(ClientId id, std::string_view bytes) {
    Effects out;
    auto it = members_.find(id);
    if (it == members_.end()) return out;  // already left (e.g. after /quit)
    it->second.framer.append(bytes);
    std::string line;
    // Every complete line, until the client leaves or the input is unusable.
    while (contains(id)) {
        switch (members_.at(id).framer.next(line)) {
            case common::LineFramer::Status::line:
                handle_line(id, line, out);
                continue;
            case common::LineFramer::Status::need_more:
                return out;
            case common::LineFramer::Status::too_long:
                to_one(id,
                       make({"* error: line too long (max ", std::to_string(kMaxLine), " bytes)"}),
                       out);
                out.log.push_back(members_.at(id).nick + " sent a line over " +
                                  std::to_string(kMaxLine) + " bytes");
                leave(id, " left", out);
                out.closes.push_back(id);
                return out;
        }
    }
    return out;
}

Effects Room::end_of_input(ClientId id) {
    Effects out;
    auto it = members_.find(id);
    if (it == members_.end()) return out;
    const std::string rest = it->second.framer.take_rest();
    if (!rest.empty()) handle_line(id, rest, out);  // a last line without '\n'
    if (contains(id)) {
        leave(id, " left", out);
        out.closes.push_back(id);
    }
    return out;
}

Effects Room::lost(ClientId id, LostReason why) {
    Effects out;
    if (contains(id)) leave(id, why == LostReason::too_slow ? " left (too slow)" : " left", out);
    return out;
}

Effects Room::shutdown() {
    Effects out;
    for (ClientId id : join_order_)
        out.deliveries.push_back({id, shutting_down()});
    return out;
}

std::string Room::nick(ClientId id) const {
    auto it = members_.find(id);
    return it == members_.end() ? std::string() : it->second.nick;
}

void Room::handle_line(ClientId id, std::string_view line, Effects& out) {
    if (line.empty()) return;  // empty lines are ignored
    if (line.front() == '/') {
        command(id, line, out);
        return;
    }
    // Text: formatted once, shared by every receiver.
    to_all_but(id, make({members_.at(id).nick, ": ", line}), out);
}

void Room::command(ClientId id, std::string_view line, Effects& out) {
    const auto [word, rest] = split_word(line);
    Member& me = members_.at(id);
    // "* error: " and up to three pieces: error("no such user ", name).
    auto error = [&](std::string_view a, std::string_view b = {}, std::string_view c = {}) {
        to_one(id, make({"* error: ", a, b, c}), out);
    };

    if (word == "/nick") {
        const std::string_view name = rest;  // the whole rest of the line
        if (name.empty()) return error("usage: /nick NAME");
        if (!valid_nick(name)) {
            return error("invalid nick ", quoted(name), " (1-16 of A-Z a-z 0-9 _ -, no spaces)");
        }
        if (name == me.nick) return error("you are already ", me.nick);
        const ClientId holder = find(name);
        if (holder >= 0 && holder != id) return error("nick ", name, " is taken");
        const Chunk notice = make({"* ", me.nick, " is now ", name});
        out.log.push_back(me.nick + " is now " + std::string(name));
        by_nick_.erase(lowered(me.nick));  // "bob" -> "Bob" keeps the same key
        by_nick_[lowered(name)] = id;
        me.nick = name;
        to_one(id, notice, out);
        to_all_but(id, notice, out);
    } else if (word == "/msg") {
        const auto [name, text] = split_word(rest);
        if (name.empty() || text.empty()) return error("usage: /msg NAME TEXT");
        const ClientId to = find(name);
        if (to < 0) return error("no such user ", quoted(name));
        to_one(to, make({me.nick, " (private): ", text}), out);
    } else if (word == "/who") {
        std::string list = "* online: ";
        bool first = true;
        for (ClientId member : join_order_) {
            if (!first) list += ", ";
            list += members_.at(member).nick;
            first = false;
        }
        to_one(id, make({list}), out);
    } else if (word == "/help") {
        std::string help;
        for (const char* h : kHelp)
            help.append(h).append("\n");
        to_one(id, std::make_shared<const std::string>(std::move(help)), out);
    } else if (word == "/quit") {
        to_one(id, make({"* bye"}), out);
        out.log.push_back(me.nick + " quit");
        leave(id, " left", out);
        out.closes.push_back(id);
    } else {
        error("unknown command ", quoted(word));  // the word alone
    }
}

void Room::leave(ClientId id, std::string_view notice, Effects& out) {
    auto it = members_.find(id);
    if (it == members_.end()) return;
    const std::string who = it->second.nick;
    by_nick_.erase(lowered(who));
    members_.erase(it);
    std::erase(join_order_, id);  // O(members), like the notice to all of them
    to_all_but(id, make({"* ", who, notice}), out);
}

void Room::to_one(ClientId id, Chunk data, Effects& out) const {
    out.deliveries.push_back({id, std::move(data)});
}

void Room::to_all_but(ClientId id, const Chunk& data, Effects& out) const {
    for (ClientId member : join_order_) {
        if (member != id) out.deliveries.push_back({member, data});
    }
}

ClientId Room::find(std::string_view nick) const {
    auto it = by_nick_.find(lowered(nick));
    return it == by_nick_.end() ? -1 : it->second;
}

}  // namespace chat
