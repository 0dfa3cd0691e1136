// Docs cannot drift (2/3): code quoted in the docs is the code in the files.
//
// In a source file a region is marked
//     // [docs:accept]
//     ...
//     // [/docs]
// and a doc quotes it with a fenced block right after
//     <!-- snippet: step1_echo/server.cpp accept -->
// The block must equal the region (marker lines dropped, the region's common
// indentation removed). Every region must be quoted somewhere, so markers
// never outlive the text that needed them.
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "doctest.h"
#include "harness.hpp"
#include "markdown.hpp"

namespace fs = std::filesystem;
using namespace test;

namespace {

// Where regions may live: the stages and common/.
std::vector<fs::path> source_files() {
    std::vector<fs::path> out;
    for (const char* dir : {"common", "step1_echo", "step2_multiclient", "step3_tls"}) {
        const fs::path p = repo_path(dir);
        if (!fs::exists(p)) continue;
        for (const auto& e : fs::recursive_directory_iterator(p)) {
            const auto ext = e.path().extension().string();
            if (e.is_regular_file() && (ext == ".cpp" || ext == ".hpp" || ext == ".sh" ||
                                        ext == ".mk" || e.path().filename() == "Makefile")) {
                out.push_back(e.path());
            }
        }
    }
    return out;
}

// The first line where two texts differ, for a readable failure.
std::string first_difference(const std::string& quoted, const std::string& source) {
    const auto q = docs::split_lines(quoted), s = docs::split_lines(source);
    for (std::size_t i = 0; i < std::max(q.size(), s.size()); ++i) {
        const std::string a = i < q.size() ? q[i] : "<end of quote>";
        const std::string b = i < s.size() ? s[i] : "<end of region>";
        if (a != b) {
            return "line " + std::to_string(i + 1) + " of the quote:\n  doc:    " + a +
                   "\n  source: " + b;
        }
    }
    return "identical";
}

struct Quote {
    std::string doc;  // docs/01-echo.md:120
    std::string file, name, text;
};

std::vector<Quote> all_quotes(std::vector<std::string>& errors) {
    std::vector<Quote> out;
    for (const auto& md : docs::markdown_files()) {
        for (const auto& b : docs::blocks_of(read_file(md.string()))) {
            if (b.directive.rfind("snippet:", 0) != 0) continue;
            std::istringstream words(b.directive.substr(8));
            Quote q;
            q.doc = docs::relative(md) + ":" + std::to_string(b.line);
            std::string extra;
            if (!(words >> q.file >> q.name) || (words >> extra)) {
                errors.push_back(q.doc + ": expected <!-- snippet: PATH NAME -->");
                continue;
            }
            q.text = b.text;
            out.push_back(std::move(q));
        }
    }
    return out;
}

}  // namespace

TEST_CASE("snippets: regions are read with markers dropped and indentation removed") {
    std::vector<std::string> errors;
    const auto regions = docs::regions_of(
        "int a;\n"
        "    // [docs:outer]\n"
        "    if (x) {\n"
        "        // [docs:inner]\n"
        "        // [lesson:call]\n"
        "        y();\n"
        "        // [/lesson]\n"
        "        // [/docs]\n"
        "    }\n"
        "    // [/docs]\n"
        "# [docs:make]\n"
        "all: x\n"
        "# [/docs]\n",
        &errors);
    CHECK(errors.empty());
    REQUIRE(regions.size() == 3);
    CHECK(regions.at("outer").text == "if (x) {\n    y();\n}\n");
    CHECK(regions.at("inner").text == "y();\n");
    CHECK(regions.at("make").text == "all: x\n");
    CHECK(regions.at("outer").line == 2);
}

TEST_CASE("snippets: broken markers are reported") {
    std::vector<std::string> errors;
    docs::regions_of(
        "// [docs:a]\nx\n// [/docs]\n// [/docs]\n// [docs:a]\n// [/docs]\n"
        "// [docs:open]\n",
        &errors);
    CHECK(errors.size() == 3);  // stray close, duplicate name, never closed
}

TEST_CASE("snippets: a quote that differs from its region is caught") {
    const std::string doc = "<!-- snippet: x.cpp f -->\n```cpp\nint f() { return 2; }\n```\n";
    const auto blocks = docs::blocks_of(doc);
    REQUIRE(blocks.size() == 1);
    CHECK(blocks[0].directive == "snippet: x.cpp f");
    const auto regions = docs::regions_of("// [docs:f]\nint f() { return 1; }\n// [/docs]\n");
    CHECK(blocks[0].text != regions.at("f").text);
    CHECK(first_difference(blocks[0].text, regions.at("f").text).find("return 1") !=
          std::string::npos);
}

TEST_CASE("snippets: every quoted snippet equals its source region") {
    std::vector<std::string> errors;
    const auto quotes = all_quotes(errors);
    for (const auto& e : errors)
        FAIL_CHECK(e);
    std::map<std::string, std::map<std::string, docs::Region>> cache;
    for (const auto& q : quotes) {
        INFO(q.doc << " quotes " << q.file << " [docs:" << q.name << "]");
        const fs::path src = repo_path(q.file);
        if (!fs::exists(src)) {
            FAIL_CHECK("no such file");
            continue;
        }
        auto [pos, fresh] = cache.try_emplace(q.file);
        if (fresh) pos->second = docs::regions_of(read_file(src.string()));
        const auto region = pos->second.find(q.name);
        if (region == pos->second.end()) {
            FAIL_CHECK("no such region in the file");
            continue;
        }
        INFO(first_difference(q.text, region->second.text));
        CHECK(q.text == region->second.text);
    }
    CHECK(quotes.size() >= 10);
}

TEST_CASE("snippets: every marked region is well formed and quoted by some doc") {
    std::vector<std::string> ignored;
    std::set<std::pair<std::string, std::string>> quoted;
    for (const auto& q : all_quotes(ignored))
        quoted.emplace(q.file, q.name);
    int regions = 0;
    for (const auto& file : source_files()) {
        std::vector<std::string> errors;
        const std::string rel = docs::relative(file);
        for (const auto& entry : docs::regions_of(read_file(file.string()), &errors)) {
            const std::string& name = entry.first;      // (clang 14 cannot capture a
            const docs::Region& region = entry.second;  // structured binding in INFO)
            INFO(rel << ":" << region.line << ": [docs:" << name << "]");
            CHECK_MESSAGE(quoted.count({rel, name}) == 1,
                          "no doc quotes it (<!-- snippet: " << rel << " " << name << " -->)");
            ++regions;
        }
        for (const auto& e : errors)
            FAIL_CHECK(rel << ": " << e);
    }
    CHECK(regions >= 10);
}
