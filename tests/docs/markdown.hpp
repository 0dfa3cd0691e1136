// tests/docs/markdown.hpp: the small Markdown reader the docs tests share.
//
// It knows just enough Markdown to keep the docs honest: headings (for
// GitHub's anchors), fenced code blocks, and the HTML comment that may sit on
// the line before a fence:
//
//     <!-- snippet: step1_echo/server.cpp accept -->   the block quotes source
//     <!-- run stage=step1_echo port=7001 -->          the block is run
//
// The formats are described for contributors in docs/README.md#for-contributors.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "harness.hpp"

namespace docs {

inline std::vector<std::string> split_lines(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line))
        out.push_back(line);
    return out;
}

// GitHub's heading slug: lower case, drop punctuation except '-' and '_',
// spaces become '-'.
inline std::string slug(const std::string& heading) {
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

// A fence opens or closes a code block: three or more backticks (or tildes).
// Returns the fence ("```", "````" ...) or "" for any other line.
inline std::string fence_of(const std::string& line) {
    if (line.empty() || (line[0] != '`' && line[0] != '~')) return "";
    const std::size_t n = line.find_first_not_of(line[0]);
    const std::size_t len = n == std::string::npos ? line.size() : n;
    return len >= 3 ? line.substr(0, len) : "";
}

// Does `line` close a block opened by `fence`? The same character, at least as
// many of them, and nothing after (so ```` can quote blocks that use ```).
inline bool closes(const std::string& line, const std::string& fence) {
    const std::string f = fence_of(line);
    return !f.empty() && f[0] == fence[0] && f.size() >= fence.size() &&
           line.find_first_not_of(" \t", f.size()) == std::string::npos;
}

// Calls `on_line(line, in_code)` for every line; fence lines count as code.
template <typename OnLine>
void for_each_line(const std::string& markdown, OnLine on_line) {
    std::string open;  // the fence of the block we are in, or ""
    for (const std::string& line : split_lines(markdown)) {
        if (open.empty() && !fence_of(line).empty()) {
            open = fence_of(line);
            on_line(line, true);
        } else if (!open.empty()) {
            if (closes(line, open)) open.clear();
            on_line(line, true);
        } else {
            on_line(line, false);
        }
    }
}

// Every anchor a Markdown file offers: heading slugs (with GitHub's -1, -2
// suffixes for repeats) and explicit <a id="..."> / <a name="...">.
inline std::set<std::string> anchors_of(const std::string& markdown) {
    std::set<std::string> out;
    std::map<std::string, int> seen;
    static const std::regex explicit_anchor(R"(<a (?:id|name)=\"([^\"]+)\")");
    for_each_line(markdown, [&](const std::string& line, bool in_code) {
        if (in_code) return;
        if (line.rfind("#", 0) == 0) {
            auto first = line.find_first_not_of('#');
            if (first != std::string::npos && line[first] == ' ') {  // not "#hashtag"
                std::string s = slug(line.substr(line.find_first_not_of(' ', first)));
                int n = seen[s]++;
                out.insert(n == 0 ? s : s + "-" + std::to_string(n));
            }
        }
        for (std::sregex_iterator it(line.begin(), line.end(), explicit_anchor), end; it != end;
             ++it) {
            out.insert((*it)[1]);
        }
    });
    return out;
}

// A fenced code block and the HTML comment on the line before it, if any.
struct Block {
    int line = 0;           // 1-based line of the opening fence
    std::string info;       // "console", "cpp", "mermaid" ...
    std::string directive;  // "snippet: step1_echo/server.cpp accept", "run port=7001", ""
    std::string text;       // the lines between the fences, each ending in '\n'
};

inline std::vector<Block> blocks_of(const std::string& markdown) {
    static const std::regex comment(R"(^\s*<!--\s*(.*?)\s*-->\s*$)");
    std::vector<Block> out;
    const auto lines = split_lines(markdown);
    for (std::size_t i = 0; i < lines.size(); ++i) {
        const std::string fence = fence_of(lines[i]);
        if (fence.empty()) continue;
        Block b;
        b.line = static_cast<int>(i) + 1;
        b.info = lines[i].substr(fence.size());
        std::smatch m;
        if (i > 0 && std::regex_match(lines[i - 1], m, comment)) b.directive = m[1];
        for (++i; i < lines.size() && !closes(lines[i], fence); ++i)
            b.text += lines[i] + "\n";
        out.push_back(std::move(b));
    }
    return out;
}

// The Markdown files the docs tests read: docs/**/*.md and the README.
inline std::vector<std::filesystem::path> markdown_files() {
    namespace fs = std::filesystem;
    std::vector<fs::path> files = {test::repo_path("README.md")};
    for (const auto& e : fs::recursive_directory_iterator(test::repo_path("docs"))) {
        if (e.path().extension() == ".md") files.push_back(e.path());
    }
    return files;
}

// Path relative to the repository root, for messages.
inline std::string relative(const std::filesystem::path& p) {
    return std::filesystem::relative(p, test::repo_path("")).string();
}

// ---- snippets ----------------------------------------------------------------

// `// [docs:NAME]` or `# [docs:NAME]` opens a region, `// [/docs]` closes the
// innermost one. Regions may nest; marker lines never appear in a quote.
inline std::optional<std::string> marker_open(const std::string& line) {
    static const std::regex open(R"(^\s*(?://|#)\s*\[docs:([A-Za-z0-9_.-]+)\]\s*$)");
    std::smatch m;
    if (std::regex_match(line, m, open)) return m[1].str();
    return std::nullopt;
}

inline bool marker_close(const std::string& line) {
    static const std::regex close(R"(^\s*(?://|#)\s*\[/docs\]\s*$)");
    return std::regex_match(line, close);
}

// `// [lesson:NAME]` ... `// [/lesson]`: what `make exercise` cuts out
// (tests/grade/exercise.py). Inside a docs region these lines are not quoted.
inline bool lesson_marker(const std::string& line) {
    static const std::regex lesson(R"(^\s*//\s*\[(lesson:[A-Za-z0-9_-]+|/lesson)\]\s*$)");
    return std::regex_match(line, lesson);
}

struct Region {
    int line = 0;      // 1-based line of the opening marker
    std::string text;  // the lines inside, markers dropped, common indentation removed
};

// Every region of a source file by name. Problems (unclosed, stray close,
// duplicate name) go to *errors.
inline std::map<std::string, Region> regions_of(const std::string& source,
                                                std::vector<std::string>* errors = nullptr) {
    struct Open {
        std::string name;
        int line;
        std::vector<std::string> body;
    };
    std::map<std::string, Region> out;
    std::vector<Open> stack;
    const auto lines = split_lines(source);
    auto error = [&](const std::string& e) {
        if (errors) errors->push_back(e);
    };
    for (std::size_t i = 0; i < lines.size(); ++i) {
        const int n = static_cast<int>(i) + 1;
        if (auto name = marker_open(lines[i])) {
            stack.push_back({*name, n, {}});
            continue;
        }
        if (marker_close(lines[i])) {
            if (stack.empty()) {
                error("line " + std::to_string(n) + ": [/docs] without [docs:NAME]");
                continue;
            }
            Open done = std::move(stack.back());
            stack.pop_back();
            std::size_t indent = std::string::npos;
            for (const auto& l : done.body) {
                auto first = l.find_first_not_of(" \t");
                if (first != std::string::npos) indent = std::min(indent, first);
            }
            Region r{done.line, ""};
            for (const auto& l : done.body)
                r.text += (l.size() > indent ? l.substr(indent) : std::string()) + "\n";
            if (!out.emplace(done.name, r).second) {
                error("line " + std::to_string(done.line) + ": [docs:" + done.name +
                      "] used twice in one file");
            }
            continue;
        }
        if (lesson_marker(lines[i])) continue;
        for (auto& o : stack)
            o.body.push_back(lines[i]);
    }
    for (const auto& o : stack)
        error("line " + std::to_string(o.line) + ": [docs:" + o.name + "] is never closed");
    return out;
}

// ---- runnable blocks -----------------------------------------------------------

// Does one expected line match one actual line? In the expected line `...`
// matches any text, and a run of spaces matches any run of spaces, or none:
// tools like ss size their columns to the content, so a 5-digit port moves
// them. Trailing spaces never matter.
inline bool line_matches(const std::string& expected, const std::string& actual) {
    auto rtrim = [](std::string s) {
        while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
            s.pop_back();
        return s;
    };
    const std::string want = rtrim(expected), got = rtrim(actual);
    std::string pattern;
    for (std::size_t i = 0; i < want.size();) {
        if (want.compare(i, 3, "...") == 0) {
            pattern += ".*";
            i += 3;
        } else if (want[i] == ' ') {
            pattern += " *";
            while (i < want.size() && want[i] == ' ')
                ++i;
        } else {
            if (std::strchr(R"(\^$.|?*+()[]{}/)", want[i])) pattern += '\\';
            pattern += want[i++];
        }
    }
    return std::regex_match(got, std::regex(pattern));
}

// Does the expected output (lines) match the actual lines? A line that is
// just `...` stands for any number of lines, none included.
inline bool output_matches(const std::vector<std::string>& expected,
                           const std::vector<std::string>& actual, std::size_t e = 0,
                           std::size_t a = 0) {
    if (e == expected.size()) return a == actual.size();
    if (expected[e] == "...") {
        for (std::size_t skip = a; skip <= actual.size(); ++skip) {
            if (output_matches(expected, actual, e + 1, skip)) return true;
        }
        return false;
    }
    return a < actual.size() && line_matches(expected[e], actual[a]) &&
           output_matches(expected, actual, e + 1, a + 1);
}

// One `$ ` line of a runnable block and the output shown under it.
struct Command {
    std::string text;                   // without "$ "
    bool background = false;            // ended in " &"
    std::vector<std::string> expected;  // the lines shown under it
};

struct RunSpec {
    std::string stage;               // stage=DIR
    std::vector<std::string> ports;  // port=N (repeatable)
    int timeout_s = 10;              // timeout=S, at most 60
    std::vector<Command> commands;
    std::vector<std::string> errors;  // malformed block
};

inline RunSpec parse_run(const Block& b) {
    RunSpec spec;
    std::istringstream words(b.directive.substr(3));  // after "run"
    std::string word;
    while (words >> word) {
        auto eq = word.find('=');
        const std::string key = word.substr(0, eq);
        const std::string value = eq == std::string::npos ? "" : word.substr(eq + 1);
        if (key == "stage" && !value.empty()) {
            spec.stage = value;
        } else if (key == "port" && !value.empty() &&
                   value.find_first_not_of("0123456789") == std::string::npos) {
            spec.ports.push_back(value);
        } else if (key == "timeout" && !value.empty() &&
                   value.find_first_not_of("0123456789") == std::string::npos) {
            spec.timeout_s = std::min(60, std::stoi(value));
        } else {
            spec.errors.push_back("unknown run option '" + word + "'");
        }
    }
    for (const std::string& line : split_lines(b.text)) {
        if (line.rfind("$ ", 0) == 0) {
            Command c;
            c.text = line.substr(2);
            std::string t = c.text;
            while (!t.empty() && t.back() == ' ')
                t.pop_back();
            if (t.size() >= 2 && t.compare(t.size() - 2, 2, " &") == 0) {
                c.background = true;
                c.text = t.substr(0, t.size() - 2);
            }
            spec.commands.push_back(std::move(c));
        } else if (spec.commands.empty()) {
            spec.errors.push_back("output before the first `$ ` command: " + line);
        } else {
            spec.commands.back().expected.push_back(line);
        }
    }
    for (const auto& c : spec.commands) {
        if (!c.background) continue;
        for (const auto& l : c.expected) {
            if (l == "...") spec.errors.push_back("a background command cannot show `...` lines");
        }
    }
    if (spec.commands.empty()) spec.errors.push_back("no `$ ` command in a run block");
    return spec;
}

// Replace every whole-number occurrence of `from` by `to`.
inline std::string replace_number(const std::string& text, const std::string& from,
                                  const std::string& to) {
    std::string out;
    std::size_t i = 0;
    while (i < text.size()) {
        const bool here = text.compare(i, from.size(), from) == 0 &&
                          (i == 0 || !std::isdigit(static_cast<unsigned char>(text[i - 1]))) &&
                          (i + from.size() >= text.size() ||
                           !std::isdigit(static_cast<unsigned char>(text[i + from.size()])));
        if (here) {
            out += to;
            i += from.size();
        } else {
            out += text[i++];
        }
    }
    return out;
}

}  // namespace docs
