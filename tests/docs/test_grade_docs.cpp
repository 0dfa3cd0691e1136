// Docs cannot drift: the checklist each stage's "Build it yourself" section
// shows is the one `make grade` prints (tests/grade/stageN.checks), check by
// check and in order, and the exercise steps name TODOs the exercise has.
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "doctest.h"
#include "harness.hpp"
#include "markdown.hpp"

using namespace test;

namespace {

// What grade.py prints for a stage whose every check passes.
std::vector<std::string> all_passed(const std::string& checks_file) {
    std::vector<std::string> out;
    int n = 0;
    for (const std::string& line : docs::split_lines(read_file(repo_path(checks_file)))) {
        if (line.empty() || line[0] == '#') continue;
        // ROLE | SUITE | TEST CASE | SECTION; the label is the test case
        // without its "stage N: " (or "stage N ") prefix.
        std::string name = line.substr(0, line.rfind(" | "));
        name = name.substr(name.rfind(" | ") + 3);
        name = std::regex_replace(name, std::regex("^stage \\d+:? "), "");
        char number[16];
        std::snprintf(number, sizeof number, "%2d", ++n);
        out.push_back("PASS " + std::string(number) + ". " + name);
    }
    out.push_back(std::to_string(n) + " passed, 0 failed");
    return out;
}

}  // namespace

TEST_CASE("grade docs: each stage's checklist is the one make grade prints") {
    int found = 0;
    for (const char* doc : {"docs/01-echo.md", "docs/02-multiclient.md", "docs/03-tls.md"}) {
        const std::vector<std::string> lines = docs::split_lines(read_file(repo_path(doc)));
        for (std::size_t i = 0; i < lines.size(); ++i) {
            std::smatch m;
            static const std::regex marker(
                "^<!-- grade checklist: (tests/grade/stage\\d\\.checks) -->$");
            if (!std::regex_match(lines[i], m, marker)) continue;
            ++found;
            INFO(doc << " line " << i + 1 << " against " << m[1]);
            REQUIRE(i + 1 < lines.size());
            CHECK(lines[i + 1] == "```text");
            std::vector<std::string> shown;
            for (std::size_t j = i + 2; j < lines.size() && lines[j] != "```"; ++j)
                shown.push_back(lines[j]);
            CHECK(shown == all_passed(m[1]));
        }
    }
    CHECK(found >= 1);
}

TEST_CASE("grade docs: the TODO numbers a stage doc names exist in its exercise") {
    for (const auto& pair : std::vector<std::pair<std::string, std::string>>{
             {"docs/01-echo.md", "tests/grade/exercise/step1_echo.todo"},
             {"docs/02-multiclient.md", "tests/grade/exercise/step2_multiclient.todo"},
             {"docs/03-tls.md", "tests/grade/exercise/step3_tls.todo"}}) {
        // Not a structured binding: INFO captures these in a lambda (clang).
        const std::string& doc = pair.first;
        const std::string& todo_file = pair.second;
        const std::string todo = read_file(repo_path(todo_file));
        const std::string text = read_file(repo_path(doc));
        const auto start = text.find("\n## Build it yourself");
        if (start == std::string::npos) continue;
        const std::string section = text.substr(start);
        std::regex mention("TODOs? (\\d+)(?: (?:to|and) (\\d+))?");
        int found = 0;
        for (auto it = std::sregex_iterator(section.begin(), section.end(), mention);
             it != std::sregex_iterator(); ++it) {
            for (int g : {1, 2}) {
                if (!(*it)[g].matched) continue;
                ++found;
                INFO(doc << " names " << it->str() << "; " << todo_file << " has no TODO "
                         << (*it)[g].str());
                CHECK(todo.find("TODO " + (*it)[g].str() + ": ") != std::string::npos);
            }
        }
        CHECK(found > 0);
    }
}
