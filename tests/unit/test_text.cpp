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

// "Trojan Source" (CVE-2021-42574): U+202E makes the rest of a line display
// right to left, so a peer could make its text read as something else.
TEST_CASE("escape_controls: bidirectional controls are shown as \\uXXXX, never obeyed") {
    CHECK(common::escape_controls("abc\xe2\x80\xae"
                                  "fed") == "abc\\u202efed");  // RLO
    const char* const bidi[][2] = {
        {"\xe2\x80\xaa", "\\u202a"}, {"\xe2\x80\xab", "\\u202b"}, {"\xe2\x80\xac", "\\u202c"},
        {"\xe2\x80\xad", "\\u202d"}, {"\xe2\x80\xae", "\\u202e"}, {"\xe2\x81\xa6", "\\u2066"},
        {"\xe2\x81\xa7", "\\u2067"}, {"\xe2\x81\xa8", "\\u2068"}, {"\xe2\x81\xa9", "\\u2069"},
        {"\xe2\x80\x8e", "\\u200e"}, {"\xe2\x80\x8f", "\\u200f"}, {"\xd8\x9c", "\\u061c"},
    };
    for (const auto& pair : bidi) {
        const std::string shown = pair[1];
        INFO(shown);
        CHECK(common::escape_controls(pair[0]) == shown);
    }
}

TEST_CASE("escape_controls: invisible format characters are shown; visible neighbours are not") {
    CHECK(common::escape_controls("pay\xe2\x80\x8bpal") == "pay\\u200bpal");  // zero width space
    CHECK(common::escape_controls("\xe2\x80\x8c\xe2\x80\x8d") == "\\u200c\\u200d");
    CHECK(common::escape_controls("\xe2\x81\xa0\xe2\x81\xa4") == "\\u2060\\u2064");
    CHECK(common::escape_controls("\xef\xbb\xbfhi") == "\\ufeffhi");  // BOM
    CHECK(common::escape_controls("soft\xc2\xadhyphen") == "soft\\u00adhyphen");
    CHECK(common::escape_controls("\xe2\x80\xa8") == "\\u2028");          // line separator
    CHECK(common::escape_controls("\xf3\xa0\x81\x81") == "\\U000e0041");  // tag 'A'
    // Their visible neighbours stay text: dashes, quotes, ellipsis, Arabic.
    for (const char* text :
         {"\xe2\x80\x90", "\xe2\x80\x94", "\xe2\x80\x9c", "\xe2\x80\xa6", "\xe2\x80\xaf",
          "\xe2\x81\x9f", "\xd8\x9b", "\xd8\xa7", "\xef\xbb\xbe", "\xf0\x9f\x98\x80"}) {
        CHECK(common::escape_controls(text) == text);
    }
}

TEST_CASE("is_invisible_format: the listed ranges, and nothing either side of them") {
    for (char32_t cp : {0x00adU, 0x061cU, 0x180eU, 0x200bU, 0x200fU, 0x2028U, 0x202eU, 0x2060U,
                        0x2064U, 0x2066U, 0x206fU, 0xfeffU, 0xfff9U, 0xfffbU, 0xe0000U, 0xe007fU}) {
        CHECK(common::is_invisible_format(cp));
    }
    for (char32_t cp :
         {0x00acU, 0x00aeU, 0x061bU, 0x061dU, 0x200aU, 0x2010U, 0x2027U, 0x202fU, 0x205fU, 0x2065U,
          0x2070U, 0xfefeU, 0xff00U, 0xfff8U, 0xfffcU, 0xdffffU, 0xe0080U, 0x41U}) {
        CHECK_FALSE(common::is_invisible_format(cp));
    }
}
