// Docs cannot drift (1/3): every link and #anchor resolves, and the bench
// figures docs/02 quotes are the last run's.
//
// - Every docs/FILE.md#anchor written anywhere (code comments, Makefiles,
//   explain texts, docs) names an existing file and one of its anchors.
// - Every relative Markdown link in docs/ and the README, [text](path#anchor)
//   and [text](#anchor), names an existing file, and an existing anchor when it
//   points into a Markdown file.
// An anchor is the GitHub slug of a heading, or an explicit <a id="...">.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <string>

#include "doctest.h"
#include "harness.hpp"
#include "markdown.hpp"

namespace fs = std::filesystem;
using namespace test;
using docs::anchors_of;
using docs::slug;

namespace {

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
    out.push_back(repo_path("Makefile"));  // `make help` names docs
    return out;
}

// The relative links of a Markdown text outside code blocks and inline code:
// (target, anchor) where either may be empty.
std::vector<std::pair<std::string, std::string>> links_of(const std::string& markdown) {
    static const std::regex link(R"(\]\(([^)#\s]*)(#[^)\s]*)?\))");
    static const std::regex inline_code("`[^`]*`");
    std::vector<std::pair<std::string, std::string>> out;
    docs::for_each_line(markdown, [&](const std::string& raw, bool in_code) {
        if (in_code) return;
        const std::string line = std::regex_replace(raw, inline_code, "``");
        for (std::sregex_iterator it(line.begin(), line.end(), link), end; it != end; ++it) {
            const std::string target = (*it)[1];
            if (target.find(':') != std::string::npos) continue;  // https:, mailto:
            out.emplace_back(target, (*it)[2].matched ? std::string((*it)[2]).substr(1) : "");
        }
    });
    return out;
}

}  // namespace

TEST_CASE("docs: slugs follow GitHub's rules") {
    CHECK(slug("Why poll?") == "why-poll");
    CHECK(slug("accept") == "accept");
    CHECK(slug("TIME_WAIT and SO_REUSEADDR") == "time_wait-and-so_reuseaddr");
    CHECK(slug("`listen`: the accept queue") == "listen-the-accept-queue");
    CHECK(slug("Partial sends, EINTR & SIGPIPE") == "partial-sends-eintr--sigpipe");
}

TEST_CASE("docs: anchors come from headings outside code, with -1 for repeats") {
    const auto a = anchors_of(
        "# Top\n## Try it\n```sh\n# not a heading\n```\n## Try it\n"
        "#hashtag\n<a id=\"manual\"></a>\n"
        "````md\n```\n# inside a quoted block\n```\n````\n");
    CHECK(a == std::set<std::string>{"top", "try-it", "try-it-1", "manual"});
}

TEST_CASE("docs: links are found outside code only") {
    const auto links = links_of(
        "see [a](a.md#x), [b](#y) and [c](https://e.org)\n"
        "`[d](d.md)`\n```\n[e](e.md)\n```\n");
    REQUIRE(links.size() == 2);
    CHECK(links[0] == std::pair<std::string, std::string>{"a.md", "x"});
    CHECK(links[1] == std::pair<std::string, std::string>{"", "y"});
}

TEST_CASE("docs: every docs/FILE.md#anchor referenced anywhere exists") {
    static const std::regex ref(R"(docs/([A-Za-z0-9_./-]+\.md)(#[A-Za-z0-9_-]+)?)");
    std::map<std::string, std::set<std::string>> cache;
    int checked = 0;
    for (const auto& file : files_to_scan()) {
        if (file.parent_path() == fs::path(repo_path("tests/docs")) &&
            file.filename().string().rfind("test_", 0) == 0) {
            continue;  // this suite's own made-up examples
        }
        const std::string text = read_file(file.string());
        for (std::sregex_iterator it(text.begin(), text.end(), ref), end; it != end; ++it) {
            const std::string target = (*it)[1];
            const std::string anchor = (*it)[2].matched ? std::string((*it)[2]).substr(1) : "";
            const fs::path doc = repo_path("docs/" + target);
            INFO(docs::relative(file)
                 << " refers to docs/" << target << (anchor.empty() ? "" : "#" + anchor));
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

TEST_CASE("docs: relative links and #anchors inside docs/ and README resolve") {
    int checked = 0;
    for (const auto& file : docs::markdown_files()) {
        const std::string text = read_file(file.string());
        for (const auto& link : links_of(text)) {
            const std::string& target = link.first;   // (no structured binding:
            const std::string& anchor = link.second;  // clang 14 cannot capture one)
            const fs::path path = target.empty() ? file : file.parent_path() / target;
            INFO(docs::relative(file)
                 << " links to " << target << (anchor.empty() ? "" : "#") << anchor);
            CHECK(fs::exists(path));
            if (!anchor.empty() && path.extension() == ".md" && fs::exists(path)) {
                CHECK(anchors_of(read_file(path.string())).count(anchor) == 1);
            }
            ++checked;
        }
    }
    CHECK(checked > 20);
}

// docs/02-multiclient.md quotes the plot's points from the run that wrote
// docs/benchmarks.md; a new `make bench` must not leave the old ones there.
TEST_CASE("docs: the bench points quoted in 02-multiclient.md are benchmarks.md's") {
    // The text of the first code block in `markdown` that starts with `head`,
    // without `head`.
    auto block_after = [](const std::string& markdown, const std::string& head) {
        for (const docs::Block& b : docs::blocks_of(markdown)) {
            if (b.text.starts_with(head)) return b.text.substr(head.size());
        }
        return "(no block starting with " + head + ")";
    };
    const std::string points =
        block_after(read_file(repo_path("docs/benchmarks.md")), "select 10 ");
    const std::string quoted =
        block_after(read_file(repo_path("docs/02-multiclient.md")),
                    "$ make bench\n$ cat build/bench/clients.dat\nselect 10 ");
    CHECK(points.find("epoll 10000 ") != std::string::npos);
    CHECK(quoted == points);
}

// The prose around those points quotes figures drawn from them, and from the
// benchmarks.md row for idle memory: they must be this run's, not an older one's.
TEST_CASE("docs: the figures 02-multiclient.md draws from the bench are the run's") {
    const std::string bench = read_file(repo_path("docs/benchmarks.md"));
    const std::string doc = read_file(repo_path("docs/02-multiclient.md"));
    // "select 10 1070.0 0.0": server, clients, ns per message, bytes per client.
    std::map<std::string, std::map<int, std::pair<double, double>>> points;
    static const std::regex point(R"(^(select|epoll) (\d+) ([\d.]+) ([\d.]+)$)");
    for (const std::string& line : docs::split_lines(bench)) {
        std::smatch m;
        if (std::regex_match(line, m, point))
            points[m[1]][std::stoi(m[2])] = {std::stod(m[3]), std::stod(m[4])};
    }
    REQUIRE(points["select"].count(10) == 1);
    REQUIRE(points["select"].count(1000) == 1);
    REQUIRE(points["epoll"].count(10000) == 1);
    auto whole = [](double x) { return std::to_string(std::lround(x)); };
    auto tenth = [](double x) {
        char out[32];
        std::snprintf(out, sizeof out, "%.1f", x);
        return std::string(out);
    };
    auto tens = [](double x) { return std::to_string(std::lround(x / 10) * 10); };
    const double s10 = points["select"][10].first, s1000 = points["select"][1000].first;
    double emin = 1e18, emax = 0;  // epoll's range up to 1000 clients
    for (const auto& [clients, p] : points["epoll"]) {
        if (clients > 1000) continue;
        emin = std::min(emin, p.first);
        emax = std::max(emax, p.first);
    }
    // The text wraps lines: compare with every run of white space as one space.
    const std::string text = std::regex_replace(doc, std::regex(R"(\s+)"), " ");
    CHECK_MESSAGE(
        text.find("`select` went from " + whole(s10) + " to " + whole(s1000) + " ns per message (" +
                  tenth(s1000 / s10) + " times)") != std::string::npos,
        "select " << whole(s10) << " to " << whole(s1000));
    CHECK_MESSAGE(text.find("`epoll` stayed between " + whole(emin) + " and " + whole(emax) +
                            " up to 1000 clients") != std::string::npos,
                  "epoll " << whole(emin) << " to " << whole(emax));
    CHECK_MESSAGE(
        text.find("was " + whole(points["epoll"][3000].first) + " at 3000 and " +
                  whole(points["epoll"][10000].first) + " at 10,000") != std::string::npos,
        "epoll at 3000 and 10,000");
    CHECK_MESSAGE(
        text.find("settles at about " + tens(points["epoll"][10000].second) +
                  " bytes per idle client for `server_epoll` at 10,000") != std::string::npos,
        "at 10,000: " << tens(points["epoll"][10000].second));
    std::smatch row;
    REQUIRE(std::regex_search(
        bench, row, std::regex(R"(\| memory per idle client \(epoll\) \| [^|]+\| ([\d.]+) )")));
    CHECK_MESSAGE(text.find("an idle client then costs about " + tens(std::stod(row[1])) +
                            " bytes") != std::string::npos,
                  "idle client: " << tens(std::stod(row[1])));
}
