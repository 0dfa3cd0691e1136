// Docs cannot drift: the checklist each stage's "Build it yourself" section
// shows is the one `make grade` prints (tests/grade/stageN.checks), check by
// check and in order, and the exercise steps name TODOs the exercise has.
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "doctest.h"
#include "harness.hpp"

using namespace test;

namespace {

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        out.push_back(line);
    return out;
}

// What grade.py prints for a stage whose every check passes.
std::vector<std::string> all_passed(const std::string& checks_file) {
    std::vector<std::string> out;
    int n = 0;
    for (const std::string& line : lines_of(read_file(repo_path(checks_file)))) {
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
        const std::vector<std::string> lines = lines_of(read_file(repo_path(doc)));
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
    const std::string todo = read_file(repo_path("tests/grade/exercise/step1_echo.todo"));
    const std::string doc = read_file(repo_path("docs/01-echo.md"));
    const std::string section = doc.substr(doc.find("\n## Build it yourself"));
    std::regex mention("TODOs? (\\d+)(?: (?:to|and) (\\d+))?");
    for (auto it = std::sregex_iterator(section.begin(), section.end(), mention);
         it != std::sregex_iterator(); ++it) {
        for (int g : {1, 2}) {
            if (!(*it)[g].matched) continue;
            INFO("docs/01-echo.md names " << it->str());
            CHECK(todo.find("todo(" + (*it)[g].str() + ", ") != std::string::npos);
        }
    }
}
