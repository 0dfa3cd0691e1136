// Unit tests for common/text.hpp: line framing and control-byte escaping.
#include "../../common/text.hpp"

#include <string>
#include <vector>

#include "doctest.h"

using common::LineFramer;

namespace {
std::vector<std::string> lines_of(LineFramer& f) {
    std::vector<std::string> out;
    std::string line;
    while (f.next(line) == LineFramer::Status::line)
        out.push_back(line);
    return out;
}
}  // namespace

TEST_CASE("LineFramer: a line split over three appends comes out once") {
    LineFramer f(100);
    f.append("hel");
    CHECK(lines_of(f).empty());
    f.append("lo wor");
    CHECK(lines_of(f).empty());
    f.append("ld\n");
    CHECK(lines_of(f) == std::vector<std::string>{"hello world"});
    CHECK(f.buffered() == 0);
}

TEST_CASE("LineFramer: two lines in one append, CRLF dropped, empty lines kept") {
    LineFramer f(100);
    f.append("a\r\nb\n\npartial");
    CHECK(lines_of(f) == std::vector<std::string>{"a", "b", ""});
    CHECK(f.buffered() == 7);
    CHECK(f.take_rest() == "partial");
    CHECK(f.buffered() == 0);
}

TEST_CASE("LineFramer: a '\\r' inside a line is kept") {
    LineFramer f(100);
    f.append("a\rb\n");
    CHECK(lines_of(f) == std::vector<std::string>{"a\rb"});
}

TEST_CASE("LineFramer: exactly max bytes is a line, max+1 is too long") {
    std::string line;
    LineFramer ok(4096);
    ok.append(std::string(4096, 'x') + "\r\n");
    REQUIRE(ok.next(line) == LineFramer::Status::line);
    CHECK(line.size() == 4096);

    LineFramer bad(4096);
    bad.append(std::string(4097, 'x') + "\n");
    CHECK(bad.next(line) == LineFramer::Status::too_long);
    CHECK(bad.next(line) == LineFramer::Status::too_long);  // it stays unusable
}

TEST_CASE("LineFramer: too long as soon as more than max is buffered without '\\n'") {
    std::string line;
    LineFramer f(4096);
    f.append(std::string(4096, 'x'));
    CHECK(f.next(line) == LineFramer::Status::need_more);
    f.append("\r");  // may still be the start of "\r\n"
    CHECK(f.next(line) == LineFramer::Status::need_more);
    f.append("\n");
    CHECK(f.next(line) == LineFramer::Status::line);

    LineFramer g(4096);
    g.append(std::string(4097, 'x'));
    CHECK(g.next(line) == LineFramer::Status::too_long);
}

TEST_CASE("escape_controls: control bytes become \\xNN, tab and text stay") {
    CHECK(common::escape_controls("plain\ttext") == "plain\ttext");
    CHECK(common::escape_controls("\x1b[31mred") == "\\x1b[31mred");
    CHECK(common::escape_controls(std::string("a\0b", 3)) == "a\\x00b");
    CHECK(common::escape_controls("\r\x7f\n") == "\\x0d\\x7f\\x0a");
    CHECK(common::escape_controls("caf\xc3\xa9 \xed\x95\x9c") == "caf\xc3\xa9 \xed\x95\x9c");
    CHECK(common::escape_controls("\xc2\x9b"
                                  "2J") == "\\xc2\\x9b2J");    // C1 CSI
    CHECK(common::escape_controls("\xc2\xa0") == "\xc2\xa0");  // NBSP is text
}

TEST_CASE("escape_controls: bytes that are not UTF-8 are shown, never passed to the terminal") {
    // A lone 0x9b is CSI to a terminal set to Latin-1.
    CHECK(common::escape_controls("\x9b"
                                  "2J") == "\\x9b2J");
    CHECK(common::escape_controls("\xff\xfe") == "\\xff\\xfe");
    CHECK(common::escape_controls("\xc3") == "\\xc3");                             // cut short
    CHECK(common::escape_controls("\xc0\xaf") == "\\xc0\\xaf");                    // overlong '/'
    CHECK(common::escape_controls("\xed\xa0\x80") == "\\xed\\xa0\\x80");           // a surrogate
    CHECK(common::escape_controls("\xf0\x9f\x98\x80!") == "\xf0\x9f\x98\x80!");    // U+1F600
    CHECK(common::escape_controls("\xf4\x90\x80\x80") == "\\xf4\\x90\\x80\\x80");  // > U+10FFFF
}
