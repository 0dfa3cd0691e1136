// Docs cannot drift: no command in the docs goes untested by accident.
//
// A command block is a fenced block a reader would type from: its info string
// is sh, shell, bash or console, or one of its lines starts with `$ `. Each one
// in README.md and docs/ must either be run by the docs tests
// (`<!-- run ... -->`, test_runnable.cpp compares its output) or say why not,
// in the HTML comment on the line before it:
//
//     <!-- not-run: REASON free text -->
//
// REASON is one of a closed list (kReasons), so "not run" is always a decision
// with a reason a reader can check. A machine-dependent block must state the
// range to expect (the word "expected" in the comment, the range in it or in
// the text). Quoted source (`<!-- snippet: ... -->`) is compared with the file
// it quotes by test_snippets.cpp and is no command. Every fenced block names
// what it holds in its info string (a bare ``` could hide commands written
// without `$ `). The format is documented in docs/README.md#for-contributors.
#include <map>
#include <set>
#include <string>
#include <vector>

#include "doctest.h"
#include "harness.hpp"
#include "markdown.hpp"

using namespace test;

namespace {

// Why a command may stay unrun, and what each reason means.
const std::map<std::string, std::string> kReasons = {
    {"second-terminal", "it waits for, or needs, a program running in another terminal"},
    {"terminal", "it shows what an interactive terminal adds (a controlling tty, job control)"},
    {"root", "it needs root: capturing packets, namespaces, strace of a daemon, ports < 1024"},
    {"systemd", "it needs a running systemd"},
    {"real-nic", "it needs a network interface other than loopback"},
    {"machine-dependent", "it prints figures that differ per machine; the range is stated"},
    {"long-running", "it runs for minutes (make test, bench, fuzz, soak): CI runs it"},
};

bool is_command_block(const docs::Block& b) {
    if (b.directive.rfind("snippet:", 0) == 0) return false;  // quoted source
    std::string info = b.info;
    info = info.substr(0, info.find_first_of(" \t{"));
    if (info == "markdown" || info == "md") return false;  // a quoted example of the docs
    if (info == "sh" || info == "shell" || info == "bash" || info == "console") return true;
    for (const std::string& line : docs::split_lines(b.text)) {
        if (line.rfind("$ ", 0) == 0) return true;
    }
    return false;
}

enum class Verdict { not_a_command, run, marked, unmarked, bad_marker };

// What the block is, and for a bad or missing marker, why.
Verdict classify(const docs::Block& b, std::string* why) {
    if (!is_command_block(b)) return Verdict::not_a_command;
    if (b.directive == "run" || b.directive.rfind("run ", 0) == 0) return Verdict::run;
    const std::string prefix = "not-run:";
    if (b.directive.rfind(prefix, 0) != 0) {
        *why =
            "a command block that is neither run (<!-- run ... -->) nor marked "
            "(<!-- not-run: REASON ... -->)";
        return Verdict::unmarked;
    }
    std::string rest = b.directive.substr(prefix.size());
    rest.erase(0, rest.find_first_not_of(' '));
    const std::string reason = rest.substr(0, rest.find_first_of(" (;,:"));
    if (kReasons.count(reason) == 0) {
        *why = "not-run reason '" + reason + "' is not one of:";
        for (const auto& r : kReasons)
            *why += " " + r.first;
        return Verdict::bad_marker;
    }
    if (reason == "machine-dependent" && rest.find("expected") == std::string::npos) {
        *why = "a machine-dependent block must say what to expect (\"expected ...\")";
        return Verdict::bad_marker;
    }
    return Verdict::marked;
}

Verdict classify_one(const std::string& markdown) {
    const auto blocks = docs::blocks_of(markdown);
    REQUIRE(blocks.size() == 1);
    std::string why;
    return classify(blocks[0], &why);
}

}  // namespace

TEST_CASE("commands: what counts as a command block, and what marks it") {
    CHECK(classify_one("```sh\nmake step1\n```\n") == Verdict::unmarked);
    CHECK(classify_one("```console\n03:35:41 IP 127.0.0.1.1 > 127.0.0.1.2\n```\n") ==
          Verdict::unmarked);
    CHECK(classify_one("```\n$ ls\nMakefile\n```\n") == Verdict::unmarked);
    CHECK(classify_one("```\nlistening on 127.0.0.1:7001\n```\n") == Verdict::not_a_command);
    CHECK(classify_one("```cpp\nint x;\n```\n") == Verdict::not_a_command);
    CHECK(classify_one("<!-- snippet: a/b.sh x -->\n```sh\numask 077\n```\n") ==
          Verdict::not_a_command);
    CHECK(classify_one("<!-- run port=7001 -->\n```console\n$ true\n```\n") == Verdict::run);
    CHECK(classify_one("<!-- not-run: root (tcpdump) -->\n```console\n$ tcpdump\n```\n") ==
          Verdict::marked);
    CHECK(classify_one("<!-- not-run: second-terminal -->\n```sh\n./server\n```\n") ==
          Verdict::marked);
    CHECK(classify_one("<!-- not-run: boring -->\n```sh\nmake\n```\n") == Verdict::bad_marker);
    CHECK(classify_one("<!-- not-run: machine-dependent -->\n```\n$ x\n```\n") ==
          Verdict::bad_marker);
    CHECK(classify_one("<!-- not-run: machine-dependent; expected 5-15 us -->\n```\n$ x\n```\n") ==
          Verdict::marked);
    CHECK(classify_one("<!-- a comment -->\n```console\n$ ls\n```\n") == Verdict::unmarked);
    // A quoted Markdown example (the contributors' format) is not a command block.
    CHECK(classify_one("````markdown\n<!-- run -->\n```console\n$ ls\n```\n````\n") ==
          Verdict::not_a_command);
}

TEST_CASE("commands: every command block in README.md and docs/ is run or says why not") {
    int run = 0, marked = 0;
    std::map<std::string, int> by_reason;
    for (const auto& md : docs::markdown_files()) {
        for (const auto& b : docs::blocks_of(read_file(md.string()))) {
            std::string why;
            const Verdict v = classify(b, &why);
            const std::string where = docs::relative(md) + ":" + std::to_string(b.line);
            if (v == Verdict::run) ++run;
            if (v == Verdict::marked) {
                ++marked;
                std::string rest = b.directive.substr(8);
                rest.erase(0, rest.find_first_not_of(' '));
                ++by_reason[rest.substr(0, rest.find_first_of(" (;,:"))];
            }
            if (v == Verdict::unmarked || v == Verdict::bad_marker)
                FAIL_CHECK(where << ": " << why);
            // A bare fence hides what it holds: commands without `$ ` in one
            // went unseen here. Each block names it: console, sh, text ...
            if (b.info.find_first_not_of(" \t") == std::string::npos)
                FAIL_CHECK(where << ": a fenced block with no info string: say what it holds "
                                    "(```console for a session, ```sh for commands, ```text "
                                    "for output)");
        }
    }
    std::string reasons;
    for (const auto& r : by_reason)
        reasons += " " + r.first + "=" + std::to_string(r.second);
    MESSAGE("command blocks: " << run << " run, " << marked << " marked not-run (" << reasons
                               << " )");
    CHECK(run >= 20);  // a floor: runnable sessions must not quietly become excused ones
}
