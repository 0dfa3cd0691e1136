// docs/tcp-on-the-wire.md quotes real packets: every tcpdump line it shows
// comes from a transcript committed under docs/captures/ (made by
// `make capture` or tests/capture/demo.sh).
//
// Quotes may be shortened: "..." stands for a cut, and the TCP options
// ("options [...]") may be left out; the rest must match a captured line.
#include <filesystem>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "../docs/markdown.hpp"
#include "doctest.h"
#include "harness.hpp"

namespace fs = std::filesystem;
using namespace test;

namespace {

std::string trim(std::string s) {
    const auto first = s.find_first_not_of(" ,");
    if (first == std::string::npos) return "";
    const auto last = s.find_last_not_of(" ,");
    return s.substr(first, last - first + 1);
}

// Does `quote` (with "..." cuts) match `line`, fragments in order?
bool matches(const std::string& quote, const std::string& line) {
    std::size_t at = 0, from = 0;
    while (from <= quote.size()) {
        const std::size_t cut = quote.find("...", from);
        const std::string piece =
            trim(quote.substr(from, cut == std::string::npos ? std::string::npos : cut - from));
        if (!piece.empty()) {
            const std::size_t found = line.find(piece, at);
            if (found == std::string::npos) return false;
            at = found + piece.size();
        }
        if (cut == std::string::npos) break;
        from = cut + 3;
    }
    return true;
}

}  // namespace

TEST_CASE("docs: the packets tcp-on-the-wire.md quotes are in the committed captures") {
    static const std::regex packet(R"(^ \d\d:\d\d:\d\d\.\d{6} IP )");
    static const std::regex options(R"(, options \[[^\]]*\])");
    static const std::regex grep_n(R"(^\d+:(?= \d\d:))");
    std::vector<std::string> captured;  // each line twice: as is, and without options
    for (const auto& e : fs::directory_iterator(repo_path("docs/captures"))) {
        if (e.path().extension() != ".txt") continue;
        for (std::string l : docs::split_lines(read_file(e.path().string()))) {
            l = std::regex_replace(l, grep_n, "");  // "17: 00:00:00.000966 IP ..." (grep -n)
            if (!std::regex_search(l, packet)) continue;
            captured.push_back(l);
            captured.push_back(std::regex_replace(l, options, ""));
        }
    }
    REQUIRE(captured.size() > 100);

    int quoted = 0;
    bool in_code = false;
    for (const auto& l : docs::split_lines(read_file(repo_path("docs/tcp-on-the-wire.md")))) {
        if (l.rfind("```", 0) == 0) in_code = !in_code;
        if (!in_code || !std::regex_search(l, packet)) continue;
        ++quoted;
        bool found = false;
        for (const auto& c : captured) {
            if (matches(l, c)) {
                found = true;
                break;
            }
        }
        INFO("quoted: " << l);
        CHECK(found);
    }
    CHECK(quoted > 40);
}

TEST_CASE("docs: the quote matcher itself") {
    const std::string line =
        " 00:00:00.000192 IP 127.0.0.1.41406 > 127.0.0.1.44865: Flags [P.], seq 1:7, ack 1, win "
        "64, length 6";
    CHECK(matches(line, line));
    CHECK(matches(" 00:00:00.000192 IP 127.0.0.1.41406 > 127.0.0.1.44865: ..., length 6", line));
    CHECK_FALSE(
        matches(" 00:00:00.000192 IP 127.0.0.1.41406 > 127.0.0.1.44865: ..., length 7", line));
    CHECK_FALSE(matches("length 6 ... Flags [P.]", line));  // order matters
}
