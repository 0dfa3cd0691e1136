// tests/fuzz/targets.cpp: the invariants the fuzzers check (see targets.hpp).
#include "targets.hpp"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "../../common/text.hpp"
#include "../../step2_multiclient/chat.hpp"

namespace fuzz {
namespace {

void require(bool ok, const std::string& what) {
    if (!ok) throw Violation(what);
}

std::string_view as_text(std::span<const std::uint8_t> data) {
    return {reinterpret_cast<const char*>(data.data()), data.size()};
}

// The longest line the server may ever send: a client's line (kMaxLine) with
// the longest prefix or suffix around it ("* error: invalid nick " NAME
// " (1-16 of A-Z a-z 0-9 _ -, no spaces)" is the longest), NAME escaped: at
// most 4 bytes shown per byte sent ("\x1b").
constexpr std::size_t kMaxOutLine = 4 * chat::kMaxLine + 64;

// --- the line framer --------------------------------------------------------

struct Expected {
    std::vector<std::string> lines;  // complete lines before any overlong one
    bool too_long = false;           // a line (or the unfinished tail) is overlong
    std::string rest;                // the unfinished tail, '\r' dropped
};

// The model: split the whole stream on '\n', drop one '\r' before each.
Expected model(std::string_view stream, std::size_t max_line) {
    Expected e;
    std::size_t start = 0;
    while (true) {
        const std::size_t newline = stream.find('\n', start);
        std::string_view line = stream.substr(
            start, newline == std::string_view::npos ? std::string_view::npos : newline - start);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.size() > max_line) {
            e.too_long = true;
            return e;
        }
        if (newline == std::string_view::npos) {
            e.rest = line;
            return e;
        }
        e.lines.emplace_back(line);
        start = newline + 1;
    }
}

// What the clients print must not drive a terminal: below 0x20 only tab, no
// DEL, and above 0x7f only well-formed UTF-8 that is no C1 control
// (U+0080-U+009F): decoded here independently of escape_controls.
void require_inert(std::string_view printed) {
    for (std::size_t i = 0; i < printed.size();) {
        const auto c = static_cast<unsigned char>(printed[i]);
        if (c < 0x80) {
            require(c >= 0x20 || c == '\t', "escape_controls left a control byte");
            require(c != 0x7f, "escape_controls left DEL");
            ++i;
            continue;
        }
        const std::size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
        require(n != 0 && i + n <= printed.size(), "escape_controls left a byte that is not UTF-8");
        std::uint32_t code = c & (0x7f >> n);
        for (std::size_t k = 1; k < n; ++k) {
            const auto next = static_cast<unsigned char>(printed[i + k]);
            require((next & 0xc0) == 0x80, "escape_controls left a byte that is not UTF-8");
            code = (code << 6) | (next & 0x3f);
        }
        static const std::uint32_t smallest[] = {0, 0, 0x80, 0x800, 0x10000};
        require(code >= smallest[n] && code <= 0x10ffff && (code < 0xd800 || code > 0xdfff),
                "escape_controls left malformed UTF-8");
        require(code > 0x9f, "escape_controls left a C1 control");
        // Bidi controls and other invisible format characters, listed here
        // independently of common::is_invisible_format.
        const bool invisible =
            code == 0xad || code == 0x61c || code == 0x180e || (code >= 0x200b && code <= 0x200f) ||
            (code >= 0x2028 && code <= 0x202e) || (code >= 0x2060 && code <= 0x2064) ||
            (code >= 0x2066 && code <= 0x206f) || code == 0xfeff ||
            (code >= 0xfff9 && code <= 0xfffb) || (code >= 0xe0000 && code <= 0xe007f);
        require(!invisible, "escape_controls left an invisible format character");
        i += n;
    }
}

}  // namespace

void framer(std::span<const std::uint8_t> data) {
    if (data.size() < 2) return;
    // Small limits reach too_long often; 4096 is the protocol's own.
    const std::size_t max_line = data[0] == 0xff ? chat::kMaxLine : data[0] % 32;
    const std::uint8_t cut = data[1];
    const std::string_view stream = as_text(data.subspan(2));
    const Expected want = model(stream, max_line);
    // The clients print each line through escape_controls (terminal safety).
    require_inert(common::escape_controls(stream));

    common::LineFramer framer(max_line);
    std::vector<std::string> got;
    bool too_long = false;
    std::size_t pos = 0;
    std::size_t piece = 0;
    while (pos < stream.size() && !too_long) {
        // Pieces of 1..16 bytes, or everything at once when cut is 0.
        const std::size_t n = cut == 0 ? stream.size() : 1 + (cut + piece++ * 7) % 16;
        framer.append(stream.substr(pos, n));
        pos += std::min(n, stream.size() - pos);
        std::string line;
        while (true) {
            const auto status = framer.next(line);
            if (status == common::LineFramer::Status::line) {
                require(line.size() <= max_line, "framer returned a line longer than the limit");
                require(line.find('\n') == std::string::npos, "framer returned a '\\n'");
                got.push_back(line);
                continue;
            }
            if (status == common::LineFramer::Status::too_long) too_long = true;
            // The bound that keeps a server's memory in check: no more than
            // one line (and a '\r') is ever kept waiting for its '\n'.
            if (status == common::LineFramer::Status::need_more)
                require(framer.buffered() <= max_line + 1, "framer buffers more than one line");
            break;
        }
    }
    if (!too_long) {  // at EOF a last look, as the server's next recv() would
        std::string line;
        too_long = framer.next(line) == common::LineFramer::Status::too_long;
    }
    require(too_long == want.too_long, "framer's too_long differs from the model");
    if (want.too_long) {
        // It may notice earlier than the model (an unfinished line already
        // too long), never later: what it returned is a prefix of the model's.
        require(got.size() <= want.lines.size() &&
                    std::equal(got.begin(), got.end(), want.lines.begin()),
                "framer's lines before too_long differ from the model");
        return;
    }
    require(got == want.lines, "framer's lines differ from the model");
    require(framer.take_rest() == want.rest, "framer's rest at EOF differs from the model");
    require(framer.buffered() == 0, "take_rest() left bytes in the buffer");
}

// --- the Room ---------------------------------------------------------------

namespace {

char lower(char c) {
    return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}

// Drives a Room and checks each event's Effects against what we know.
class RoomChecker {
  public:
    chat::Room room;

    void join(chat::ClientId id, std::string_view nick = {}) {
        const chat::Effects e = room.join(id, nick);
        if (room.contains(id)) members_.insert(id);
        check(e, {id});
        if (!room.contains(id)) closed_.insert(id);  // refused: an invalid or taken nick
    }
    void receive(chat::ClientId id, std::string_view bytes) { check(room.receive(id, bytes), {}); }
    void end_of_input(chat::ClientId id) {
        const chat::Effects e = room.end_of_input(id);
        check(e, {});
        require(!room.contains(id), "a client is still in the Room after its EOF");
    }
    void lost(chat::ClientId id, bool too_slow) {
        const bool was_member = members_.count(id) != 0;
        const chat::Effects e =
            room.lost(id, too_slow ? chat::LostReason::too_slow : chat::LostReason::error);
        require(!room.contains(id), "a lost client is still in the Room");
        members_.erase(id);
        if (was_member) closed_.insert(id);
        for (const auto& d : e.deliveries)
            require(d.to != id, "a delivery to the client just lost");
        check(e, {});
    }
    void shutdown() {
        const chat::Effects e = room.shutdown();
        require(e.deliveries.size() == members_.size(), "shutdown notice count != members");
        check(e, {});
    }

  private:
    // Every Effects: lines well formed, and sent only to members (or to one
    // that left in this very event: its "* bye" or error comes first).
    void check(const chat::Effects& e, std::set<chat::ClientId> newcomers) {
        for (const chat::Delivery& d : e.deliveries) {
            require(d.data != nullptr, "a Delivery without data");
            const std::string& text = *d.data;
            require(!text.empty() && text.back() == '\n', "a Delivery that does not end in '\\n'");
            // An error line quotes the sender's bytes escaped: nothing raw in it.
            if (text.rfind("* error: ", 0) == 0) {
                require(text.find('\n') == text.size() - 1, "an error line with a '\\n' inside");
                require_inert(std::string_view(text).substr(0, text.size() - 1));
            }
            std::size_t start = 0;
            while (start < text.size()) {
                const std::size_t end = text.find('\n', start);
                require(end - start <= kMaxOutLine, "a line of " + std::to_string(end - start) +
                                                        " bytes (limit " +
                                                        std::to_string(kMaxOutLine) + ")");
                start = end + 1;
            }
            require(closed_.count(d.to) == 0,
                    "a Delivery to client " + std::to_string(d.to) + ", already closed");
            require(members_.count(d.to) != 0 || newcomers.count(d.to) != 0,
                    "a Delivery to client " + std::to_string(d.to) + ", never a member");
        }
        for (chat::ClientId id : e.closes) {
            require(!room.contains(id), "a client to close is still in the Room");
            require(members_.count(id) != 0 || newcomers.count(id) != 0,
                    "a close for a client that was not a member");
        }
        // Who left during the event (closes, /quit, too long, lost others).
        for (auto it = members_.begin(); it != members_.end();) {
            if (room.contains(*it)) {
                ++it;
                continue;
            }
            closed_.insert(*it);
            it = members_.erase(it);
        }
        for (chat::ClientId id : e.closes)
            closed_.insert(id);
        check_members();
    }

    // Nicks are valid and unique ignoring case; the Room's size agrees.
    void check_members() {
        require(room.size() == members_.size(), "Room::size() disagrees with the members");
        std::set<std::string> seen;
        for (chat::ClientId id : members_) {
            require(room.contains(id), "a member missing from the Room");
            std::string nick = room.nick(id);
            require(chat::valid_nick(nick), "invalid nick '" + nick + "' in the Room");
            std::transform(nick.begin(), nick.end(), nick.begin(), lower);
            require(seen.insert(nick).second, "two members named '" + nick + "'");
        }
    }

    std::set<chat::ClientId> members_;
    std::set<chat::ClientId> closed_;  // left or lost: never a delivery again
};

}  // namespace

void commands(std::span<const std::uint8_t> data) {
    RoomChecker c;
    for (chat::ClientId id = 1; id <= 3; ++id)
        c.join(id);
    std::string_view rest = as_text(data);
    while (!rest.empty()) {
        const std::size_t newline = rest.find('\n');
        std::string_view line = rest.substr(0, newline);
        rest = newline == std::string_view::npos ? std::string_view() : rest.substr(newline + 1);
        if (line.empty()) continue;
        const chat::ClientId from = 1 + static_cast<unsigned char>(line[0]) % 3;
        line.remove_prefix(1);
        c.receive(from, std::string(line) + "\n");
    }
}

void room(std::span<const std::uint8_t> data) {
    RoomChecker c;
    chat::ClientId next_id = 1;
    std::size_t pos = 0;
    auto byte = [&]() -> std::uint8_t { return pos < data.size() ? data[pos++] : 0; };
    auto any_client = [&]() -> chat::ClientId {  // members and departed alike
        return next_id == 1 ? 1 : 1 + byte() % (next_id - 1);
    };
    while (pos < data.size()) {
        switch (byte() % 8) {
            case 0:  // a new client (at most 8 at a time)
                if (c.room.size() < 8) c.join(next_id++);
                break;
            case 1: {  // a client with a certificate's CN as its nick
                const std::size_t n = byte() % 20;
                const std::string_view nick =
                    as_text(data.subspan(pos, std::min(n, data.size() - pos)));
                pos += nick.size();
                if (c.room.size() < 8) c.join(next_id++, nick);
                break;
            }
            case 2:
            case 3:
            case 4: {  // recv() returned some bytes
                const chat::ClientId id = any_client();
                const std::size_t n = byte();
                if (n > 240) {  // a flood: kilobytes without a newline
                    c.receive(id, std::string((n - 240) * 512, 'x'));
                } else {
                    const std::string_view piece =
                        as_text(data.subspan(pos, std::min(n, data.size() - pos)));
                    pos += piece.size();
                    c.receive(id, piece);
                }
                break;
            }
            case 5:
                c.end_of_input(any_client());
                break;
            case 6: {
                const chat::ClientId id = any_client();
                c.lost(id, byte() & 1);
                break;
            }
            case 7:
                c.shutdown();
                break;
        }
    }
}

}  // namespace fuzz
