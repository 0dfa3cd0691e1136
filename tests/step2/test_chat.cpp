// Unit tests for the chat core (step2_multiclient/chat.hpp): no sockets.
#include "../../step2_multiclient/chat.hpp"

#include <map>
#include <string>
#include <vector>

#include "doctest.h"

using chat::ClientId;
using chat::Effects;
using chat::Room;

namespace {

// What each client was sent, as one string per client.
struct Inbox {
    std::map<ClientId, std::string> got;
    std::vector<ClientId> closed;
    Inbox& operator<<(const Effects& e) {
        for (const auto& d : e.deliveries)
            got[d.to] += *d.data;
        closed.insert(closed.end(), e.closes.begin(), e.closes.end());
        return *this;
    }
    std::string take(ClientId id) {
        std::string s = got[id];
        got[id].clear();
        return s;
    }
};

// A room with clients 1..n joined, their welcomes read.
Room room_of(int n, Inbox& in) {
    Room room;
    for (int i = 1; i <= n; ++i)
        in << room.join(i);
    for (int i = 1; i <= n; ++i)
        in.take(i);
    return room;
}

}  // namespace

TEST_CASE("chat: connect — welcome counts the newcomer, others read joined") {
    Room room;
    Inbox in;
    in << room.join(10);
    CHECK(in.take(10) == "* welcome guest-1 (1 online)\n");
    in << room.join(11);
    CHECK(in.take(11) == "* welcome guest-2 (2 online)\n");
    CHECK(in.take(10) == "* guest-2 joined\n");
    CHECK(room.nick(11) == "guest-2");
}

TEST_CASE("chat: guest numbers are never reused") {
    Room room;
    Inbox in;
    in << room.join(1) << room.join(2);
    in << room.end_of_input(2);
    in << room.join(3);
    CHECK(room.nick(3) == "guest-3");
}

TEST_CASE("chat: a guest number taken by /nick is skipped") {
    Inbox in;
    Room room = room_of(1, in);
    in << room.receive(1, "/nick guest-2\n");
    in << room.join(2);
    CHECK(room.nick(2) == "guest-3");
}

TEST_CASE("chat: text goes to every other client, formatted once") {
    Inbox in;
    Room room = room_of(3, in);
    const Effects e = room.receive(1, "hello\n");
    REQUIRE(e.deliveries.size() == 2);
    CHECK(e.deliveries[0].data == e.deliveries[1].data);  // one shared string
    in << e;
    CHECK(in.take(1).empty());
    CHECK(in.take(2) == "guest-1: hello\n");
    CHECK(in.take(3) == "guest-1: hello\n");
}

TEST_CASE("chat: CRLF, split lines, several lines at once, empty lines") {
    Inbox in;
    Room room = room_of(2, in);
    in << room.receive(1, "a\r\n\n\r\nb");
    in << room.receive(1, "c");
    CHECK(in.take(2) == "guest-1: a\n");
    in << room.receive(1, "d\n");
    CHECK(in.take(2) == "guest-1: bcd\n");
}

TEST_CASE("chat: text is relayed byte for byte") {
    Inbox in;
    Room room = room_of(2, in);
    in << room.receive(1, std::string("\xff\xfe \x1b[2J \0 caf\xc3\xa9\n", 16));
    CHECK(in.take(2) == std::string("guest-1: \xff\xfe \x1b[2J \0 caf\xc3\xa9\n", 25));
}

TEST_CASE("chat: /nick renames for everyone; errors go to the sender only") {
    Inbox in;
    Room room = room_of(2, in);
    in << room.receive(1, "/nick bob\n");
    CHECK(in.take(1) == "* guest-1 is now bob\n");
    CHECK(in.take(2) == "* guest-1 is now bob\n");

    for (const char* bad : {"/nick a b", "/nick ", "/nick", "/nick seventeen-chars-x",
                            "/nick caf\xc3\xa9", "/nick a.b"}) {
        INFO(bad);
        in << room.receive(1, std::string(bad) + "\n");
        CHECK(in.take(1).rfind("* error: ", 0) == 0);
        CHECK(in.take(2).empty());
    }
    in << room.receive(2, "/nick BOB\n");  // uniqueness ignores case
    CHECK(in.take(2).rfind("* error: ", 0) == 0);
    in << room.receive(1, "/nick bob\n");  // one's own nick
    CHECK(in.take(1).rfind("* error: ", 0) == 0);
    in << room.receive(2, "/nick A_b-9\n");
    CHECK(in.take(1) == "* guest-2 is now A_b-9\n");
    in << room.receive(2, "/nick sixteen-chars-xx\n");
    CHECK(in.take(1) == "* A_b-9 is now sixteen-chars-xx\n");
}

TEST_CASE("chat: /msg reaches one client; the sender gets nothing back") {
    Inbox in;
    Room room = room_of(3, in);
    in << room.receive(2, "/nick Carol\n");
    in.take(1), in.take(2), in.take(3);
    in << room.receive(1, "/msg carol hi there\n");
    CHECK(in.take(2) == "guest-1 (private): hi there\n");
    CHECK(in.take(1).empty());
    CHECK(in.take(3).empty());

    in << room.receive(1, "/msg nobody hi\n");
    CHECK(in.take(1) == "* error: no such user nobody\n");
    in << room.receive(1, "/msg Carol\n");
    CHECK(in.take(1) == "* error: usage: /msg NAME TEXT\n");
    in << room.receive(1, "/msg\n");
    CHECK(in.take(1) == "* error: usage: /msg NAME TEXT\n");
    CHECK(in.take(2).empty());
}

TEST_CASE("chat: /who lists nicks in join order") {
    Inbox in;
    Room room;
    in << room.join(30) << room.join(20) << room.join(10);
    in << room.receive(30, "/nick zed\n");
    in.take(10), in.take(20), in.take(30);
    in << room.receive(10, "/who\n");
    CHECK(in.take(10) == "* online: zed, guest-2, guest-3\n");
}

TEST_CASE("chat: /help is one or more '* ' lines to the sender") {
    Inbox in;
    Room room = room_of(2, in);
    in << room.receive(1, "/help\n");
    const std::string help = in.take(1);
    CHECK(help.find("/nick") != std::string::npos);
    CHECK(help.find("/msg") != std::string::npos);
    std::size_t start = 0;
    while (start < help.size()) {
        CHECK(help.compare(start, 2, "* ") == 0);
        start = help.find('\n', start) + 1;
    }
    CHECK(in.take(2).empty());
}

TEST_CASE("chat: /quit — bye, close, others read left; later bytes are ignored") {
    Inbox in;
    Room room = room_of(2, in);
    in << room.receive(1, "/quit\nafter quit\n");
    CHECK(in.take(1) == "* bye\n");
    CHECK(in.take(2) == "* guest-1 left\n");
    CHECK(in.closed == std::vector<ClientId>{1});
    CHECK_FALSE(room.contains(1));
    in << room.receive(1, "more\n") << room.end_of_input(1);
    CHECK(in.take(2).empty());
}

TEST_CASE("chat: EOF — a last line without newline counts, then left") {
    Inbox in;
    Room room = room_of(2, in);
    in << room.receive(1, "last");
    in << room.end_of_input(1);
    CHECK(in.take(2) == "guest-1: last\n* guest-1 left\n");
    CHECK(in.take(1).empty());
    CHECK(in.closed == std::vector<ClientId>{1});
}

TEST_CASE("chat: unknown command is reported by its word alone") {
    Inbox in;
    Room room = room_of(2, in);
    in << room.receive(1, "/foo bar baz\n");
    CHECK(in.take(1) == "* error: unknown command /foo\n");
    CHECK(in.take(2).empty());
}

TEST_CASE("chat: 4096 bytes accepted, 4097 rejected with an error, then close") {
    Inbox in;
    Room room = room_of(2, in);
    in << room.receive(1, std::string(4096, 'x') + "\n");
    CHECK(in.take(2) == "guest-1: " + std::string(4096, 'x') + "\n");
    in << room.receive(1, std::string(4097, 'y'));  // no newline yet: already too long
    CHECK(in.take(1) == "* error: line too long (max 4096 bytes)\n");
    CHECK(in.take(2) == "* guest-1 left\n");
    CHECK(in.closed == std::vector<ClientId>{1});
}

TEST_CASE("chat: lost clients — error says left, too slow says so") {
    Inbox in;
    Room room = room_of(3, in);
    in << room.lost(1, chat::LostReason::error);
    CHECK(in.take(2) == "* guest-1 left\n");
    in << room.lost(2, chat::LostReason::too_slow);
    CHECK(in.take(3) == "* guest-1 left\n* guest-2 left (too slow)\n");
    CHECK(in.closed.empty());
}

TEST_CASE("chat: join with a given nick (stage 3 certificates)") {
    Inbox in;
    Room room;
    in << room.join(1, "alice");
    CHECK(in.take(1) == "* welcome alice (1 online)\n");
    in << room.join(2, "ALICE");
    CHECK(in.take(2) == "* error: nick ALICE is taken\n");
    in << room.join(3, "bad nick");
    CHECK(in.take(3).rfind("* error: ", 0) == 0);
    CHECK(in.closed == std::vector<ClientId>{2, 3});
    CHECK(room.size() == 1);
    in << room.join(4);
    CHECK(room.nick(4) == "guest-1");  // refused joins spend no guest number
}

TEST_CASE("chat: shutdown notice to every member; fixed lines") {
    Inbox in;
    Room room = room_of(2, in);
    in << room.shutdown();
    CHECK(in.take(1) == "* server shutting down\n");
    CHECK(in.take(2) == "* server shutting down\n");
    CHECK(*chat::server_full() == "* error: server full\n");
}

// Error lines quote what the client sent; a control byte in it (or a bidi
// control) goes back escaped, never raw: the server must not be the one
// who puts `ESC ] 0 ;` on the sender's terminal.
TEST_CASE("chat: error lines quote the sender's bytes escaped, never raw") {
    Inbox in;
    Room room = room_of(2, in);
    in << room.receive(1, "/nick \x1b]0;owned\x07\n");
    CHECK(in.take(1) ==
          "* error: invalid nick \\x1b]0;owned\\x07 (1-16 of A-Z a-z 0-9 _ -, no spaces)\n");
    in << room.receive(1,
                       "/nick ev\xe2\x80\xae"
                       "il\n");
    CHECK(in.take(1) == "* error: invalid nick ev\\u202eil (1-16 of A-Z a-z 0-9 _ -, no spaces)\n");
    in << room.receive(1, "/msg bo\x1b[2Jb hi\n");
    CHECK(in.take(1) == "* error: no such user bo\\x1b[2Jb\n");
    in << room.receive(1, "/fo\x9bo x\n");
    CHECK(in.take(1) == "* error: unknown command /fo\\x9bo\n");
    in << room.join(3, "al\x1b[5mice");  // a certificate's CN (stage 3)
    CHECK(in.take(3) == "* error: invalid nick al\\x1b[5mice\n");
    CHECK(in.take(2).empty());
    // Text lines are still relayed byte for byte: escaping is the reader's.
    in << room.receive(1, "te\x1bxt\n");
    CHECK(in.take(2) == "guest-1: te\x1bxt\n");
}
