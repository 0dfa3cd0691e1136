// Docs cannot drift: the sizes docs/README.md#how-big-each-stage-is states
// (lines per file, changed lines between two stages' files) are the tree's.
//
// Each table row of that section is either
//   | `path` | N |              N = the file's line count
//   | `a` → `b` | N |          N = `diff a b | grep -c '^[<>]'`, the two
//                                files read without the `// [lesson:NAME]`
//                                and `// [/lesson]` lines (make exercise's
//                                markers, no part of any lesson)
#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "doctest.h"
#include "harness.hpp"
#include "markdown.hpp"

using namespace test;

namespace {

std::string section(const std::string& text, const std::string& heading) {
    const auto start = text.find("\n" + heading + "\n");
    REQUIRE(start != std::string::npos);
    const auto end = text.find("\n## ", start + heading.size() + 1);
    return text.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

int line_count(const std::string& relative) {
    std::ifstream in(repo_path(relative));
    REQUIRE(in.good());
    int n = 0;
    for (std::string line; std::getline(in, line);)
        ++n;
    return n;
}

// Write to `copy` the file without the exercise's marker lines.
void without_markers(const std::string& relative, const std::string& copy) {
    std::ifstream in(repo_path(relative));
    REQUIRE(in.good());
    std::ofstream out(copy);
    for (std::string line; std::getline(in, line);)
        if (!docs::lesson_marker(line)) out << line << '\n';
    REQUIRE(out.good());
}

int changed_lines(const std::string& a, const std::string& b) {
    const TempPath a_copy("sizes-a"), b_copy("sizes-b");  // removed when done
    without_markers(a, a_copy.str());
    without_markers(b, b_copy.str());
    std::string out;
    shell("diff '" + a_copy.str() + "' '" + b_copy.str() + "' | grep -c '^[<>]'", &out);
    return std::stoi(out);
}

}  // namespace

TEST_CASE("docs: the stage sizes in docs/README.md are the tree's") {
    const std::string readme = read_file(repo_path("docs/README.md"));
    const std::string table = section(readme, "## How big each stage is");
    const std::regex file_row(R"(^\| `([^`]+)` \| (\d+) \|)");
    const std::regex diff_row(R"(^\| `([^`]+)` → `([^`]+)` \| (\d+) \|)");
    std::istringstream lines(table);
    int rows = 0;
    for (std::string line; std::getline(lines, line);) {
        std::smatch m;
        if (std::regex_search(line, m, diff_row)) {
            INFO(line);
            CHECK(changed_lines(m[1], m[2]) == std::stoi(m[3]));
            ++rows;
        } else if (std::regex_search(line, m, file_row)) {
            INFO(line);
            CHECK(line_count(m[1]) == std::stoi(m[2]));
            ++rows;
        }
    }
    CHECK(rows >= 4);
}
