// Docs cannot drift: every docs/...#anchor named in code or docs exists.
//
// A link target is a Markdown file under docs/ (or the README), and its
// #anchor must be the GitHub slug of one of that file's headings (or an
// explicit <a id="..."> / <a name="...">).
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "doctest.h"
#include "harness.hpp"

namespace fs = std::filesystem;
using namespace test;

namespace {

// GitHub's heading slug: lower case, drop punctuation except '-' and '_',
// spaces become '-'.
std::string slug(const std::string& heading) {
    std::string out;
    for (unsigned char c : heading) {
        if (std::isalnum(c) || c == '-' || c == '_' || c >= 0x80) {
            out += static_cast<char>(std::tolower(c));
        } else if (c == ' ') {
            out += '-';
        }
    }
    return out;
}

std::set<std::string> anchors_of(const std::string& markdown) {
    std::set<std::string> out;
    std::map<std::string, int> seen;
    bool in_code = false;
    std::istringstream in(markdown);
    std::string line;
    static const std::regex explicit_anchor(R"(<a (?:id|name)=\"([^\"]+)\")");
    while (std::getline(in, line)) {
        if (line.rfind("```", 0) == 0) in_code = !in_code;
        if (in_code) continue;
        if (line.rfind("#", 0) == 0) {
            auto text = line.substr(line.find_first_not_of('#'));
            text = text.substr(text.find_first_not_of(' '));
            std::string s = slug(text);
            int n = seen[s]++;
            out.insert(n == 0 ? s : s + "-" + std::to_string(n));
        }
        for (std::sregex_iterator it(line.begin(), line.end(), explicit_anchor), end; it != end;
             ++it) {
            out.insert((*it)[1]);
        }
    }
    return out;
}

std::vector<fs::path> files_to_scan() {
    std::vector<fs::path> out;
    for (const char* dir :
         {"common", "step1_echo", "step2_multiclient", "step3_tls", "docs", "tests"}) {
        fs::path p = repo_path(dir);
        if (!fs::exists(p)) continue;
        for (const auto& e : fs::recursive_directory_iterator(p)) {
            auto ext = e.path().extension().string();
            if (e.is_regular_file() &&
                (ext == ".cpp" || ext == ".hpp" || ext == ".md" || ext == ".mk" || ext == ".sh" ||
                 e.path().filename() == "Makefile")) {
                out.push_back(e.path());
            }
        }
    }
    out.push_back(repo_path("README.md"));
    return out;
}

}  // namespace

TEST_CASE("docs: slugs follow GitHub's rules") {
    CHECK(slug("Why poll?") == "why-poll");
    CHECK(slug("accept") == "accept");
    CHECK(slug("TIME_WAIT and SO_REUSEADDR") == "time_wait-and-so_reuseaddr");
    CHECK(slug("`listen`: the accept queue") == "listen-the-accept-queue");
}

TEST_CASE("docs: every docs/FILE.md#anchor referenced anywhere exists") {
    static const std::regex ref(R"(docs/([A-Za-z0-9_./-]+\.md)(#[A-Za-z0-9_-]+)?)");
    std::map<std::string, std::set<std::string>> cache;
    int checked = 0;
    for (const auto& file : files_to_scan()) {
        if (file.filename() == "test_docs.cpp") continue;
        const std::string text = read_file(file.string());
        for (std::sregex_iterator it(text.begin(), text.end(), ref), end; it != end; ++it) {
            const std::string target = (*it)[1];
            const std::string anchor = (*it)[2].matched ? std::string((*it)[2]).substr(1) : "";
            const fs::path doc = repo_path("docs/" + target);
            INFO(file.string() << " refers to docs/" << target
                               << (anchor.empty() ? "" : "#" + anchor));
            REQUIRE(fs::exists(doc));
            if (!anchor.empty()) {
                auto [pos, fresh] = cache.try_emplace(doc.string());
                if (fresh) pos->second = anchors_of(read_file(doc.string()));
                CHECK(pos->second.count(anchor) == 1);
            }
            ++checked;
        }
    }
    CHECK(checked > 10);
}

TEST_CASE("docs: relative links inside docs/ and README resolve") {
    static const std::regex link(R"(\]\(([^)#:\s]+)(#[^)\s]+)?\))");
    std::vector<fs::path> files = {repo_path("README.md")};
    for (const auto& e : fs::recursive_directory_iterator(repo_path("docs"))) {
        if (e.path().extension() == ".md") files.push_back(e.path());
    }
    for (const auto& file : files) {
        const std::string text = read_file(file.string());
        for (std::sregex_iterator it(text.begin(), text.end(), link), end; it != end; ++it) {
            const fs::path target = file.parent_path() / std::string((*it)[1]);
            INFO(file.string() << " links to " << (*it)[1]);
            CHECK(fs::exists(target));
            if ((*it)[2].matched && target.extension() == ".md") {
                CHECK(
                    anchors_of(read_file(target.string())).count(std::string((*it)[2]).substr(1)) ==
                    1);
            }
        }
    }
}
