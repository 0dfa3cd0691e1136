// Docs walk the code: each stage document follows its files top to bottom.
//
// A learner reads a stage's files from top to bottom with the stage document
// beside them; every call the stage teaches carries a comment naming its
// section (`// docs/02-multiclient.md#select`). For the files of each stage,
// in the reading order its document states at the top, the sections those
// comments name for the first time must come in the same order in the
// document. A later comment naming a section already read is a look back and
// fine; a comment naming a section that the document puts before one already
// read would send the learner back and forth. Only comments into the stage's
// own document count (a stage 2 file pointing at docs/01-echo.md looks back a
// stage), and only headings: the order is where each section starts.
#include <map>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "doctest.h"
#include "harness.hpp"
#include "markdown.hpp"

using namespace test;

namespace {

// The headings' anchors, in document order (GitHub's -1, -2 for repeats).
std::vector<std::string> heading_anchors(const std::string& markdown) {
    std::vector<std::string> out;
    std::map<std::string, int> seen;
    docs::for_each_line(markdown, [&](const std::string& line, bool in_code) {
        if (in_code || line.rfind("#", 0) != 0) return;
        const auto first = line.find_first_not_of('#');
        if (first == std::string::npos || line[first] != ' ') return;
        const std::string s = docs::slug(line.substr(line.find_first_not_of(' ', first)));
        const int n = seen[s]++;
        out.push_back(n == 0 ? s : s + "-" + std::to_string(n));
    });
    return out;
}

struct Mention {
    std::string anchor;
    std::string where;  // "step2_multiclient/server.cpp:104"
};

// The anchors of `doc` ("02-multiclient.md") named in `//` comments of
// `source`, in file order.
std::vector<Mention> mentions(const std::string& doc, const std::string& name,
                              const std::string& source) {
    const std::regex ref("docs/" + std::regex_replace(doc, std::regex(R"(\.)"), R"(\.)") +
                         "#([A-Za-z0-9_-]+)");
    std::vector<Mention> out;
    int n = 0;
    for (const std::string& line : docs::split_lines(source)) {
        ++n;
        const auto comment = line.find("//");
        if (comment == std::string::npos) continue;
        const std::string text = line.substr(comment);
        for (std::sregex_iterator it(text.begin(), text.end(), ref), end; it != end; ++it)
            out.push_back({(*it)[1], name + ":" + std::to_string(n)});
    }
    return out;
}

// What is out of order when `files` (name, text), read in this order, are
// walked beside `markdown`, the text of docs/`doc`. Empty: none.
std::vector<std::string> walk_errors(const std::string& doc, const std::string& markdown,
                                     const std::vector<std::pair<std::string, std::string>>& files,
                                     int* walked = nullptr) {
    const std::vector<std::string> headings = heading_anchors(markdown);
    std::map<std::string, std::size_t> position;
    for (std::size_t i = headings.size(); i-- > 0;)
        position[headings[i]] = i;  // the first heading with that anchor
    std::vector<std::string> errors;
    std::map<std::string, bool> read;
    const Mention* last = nullptr;  // the latest section read for the first time
    std::vector<Mention> all;
    for (const auto& [name, text] : files) {
        for (Mention& m : mentions(doc, name, text))
            all.push_back(std::move(m));
    }
    int count = 0;
    for (const Mention& m : all) {
        if (read[m.anchor]) continue;  // a look back
        read[m.anchor] = true;
        if (!position.count(m.anchor)) {
            errors.push_back(m.where + " names docs/" + doc + "#" + m.anchor +
                             ", which no heading of it makes");
            continue;
        }
        ++count;
        if (last && position[m.anchor] < position[last->anchor]) {
            errors.push_back(m.where + " names #" + m.anchor + " after " + last->where +
                             " named #" + last->anchor + ", but docs/" + doc + " has #" + m.anchor +
                             " before #" + last->anchor);
        }
        last = &m;
    }
    if (walked) *walked = count;
    return errors;
}

// Each stage document and its files, in the reading order it states at its top.
const std::vector<std::pair<std::string, std::vector<std::string>>>& stages() {
    static const std::vector<std::pair<std::string, std::vector<std::string>>> s = {
        {"01-echo.md", {"step1_echo/server.cpp"}},
        {"02-multiclient.md",
         {"step2_multiclient/server_fork.cpp", "step2_multiclient/server.cpp",
          "step2_multiclient/server_epoll.cpp"}},
        {"03-tls.md", {"step3_tls/server.cpp", "step3_tls/client.cpp"}},
    };
    return s;
}

}  // namespace

TEST_CASE("docs walk: an out-of-order section is found, a look back is not") {
    const std::string doc = "## socket\n## bind\n```\n## listen\n```\n## listen\n## accept\n";
    const std::string code =
        "a; // docs/01-echo.md#socket\n"
        "// docs/01-echo.md#bind and docs/02-multiclient.md#fork\n"
        "b; // docs/01-echo.md#socket\n"  // a look back
        "// docs/01-echo.md#listen\n"
        "// docs/01-echo.md#accept\n";
    int walked = 0;
    CHECK(walk_errors("01-echo.md", doc, {{"s.cpp", code}}, &walked).empty());
    CHECK(walked == 4);

    // The same file beside a document with bind and listen swapped.
    const auto swapped =
        walk_errors("01-echo.md", "## socket\n## listen\n## bind\n## accept\n", {{"s.cpp", code}});
    REQUIRE(swapped.size() == 1);
    CHECK(swapped[0] ==
          "s.cpp:4 names #listen after s.cpp:2 named #bind, but docs/01-echo.md has #listen "
          "before #bind");

    // A second file continues the walk: what the first one read is a look back.
    CHECK(walk_errors("01-echo.md", doc,
                      {{"s.cpp", "// docs/01-echo.md#socket\n// docs/01-echo.md#listen\n"},
                       {"t.cpp", "// docs/01-echo.md#socket\n// docs/01-echo.md#accept\n"}})
              .empty());
    CHECK(walk_errors(
              "01-echo.md", doc,
              {{"s.cpp", "// docs/01-echo.md#listen\n"}, {"t.cpp", "// docs/01-echo.md#bind\n"}})
              .size() == 1);
    CHECK(walk_errors("01-echo.md", doc, {{"s.cpp", "// docs/01-echo.md#nowhere\n"}}).size() == 1);
}

TEST_CASE("docs walk: each stage document follows its files top to bottom") {
    for (const auto& stage : stages()) {
        const std::string& doc = stage.first;  // (no structured binding:
        const auto& names = stage.second;      // clang 14 cannot capture one)
        std::vector<std::pair<std::string, std::string>> files;
        for (const std::string& name : names)
            files.emplace_back(name, read_file(repo_path(name)));
        int walked = 0;
        const auto errors = walk_errors(doc, read_file(repo_path("docs/" + doc)), files, &walked);
        INFO("docs/" << doc);
        for (const std::string& e : errors) {
            INFO(e);
            CHECK(false);
        }
        CHECK(walked >= 3);  // the files still name their sections
    }
}
