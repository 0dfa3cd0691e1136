// Docs cannot drift (3/3): the terminal sessions the docs show are run.
//
// A ```console block right after `<!-- run [stage=DIR] [port=N]... [timeout=S] -->`
// is a terminal session: `$ ` lines are commands, the lines under one are what
// it prints (stdout and stderr, as a terminal shows them). The whole block runs
// in one bash, in a fresh temporary directory that looks like the repo root,
// with a deadline; every N of port=N is replaced by a free loopback port; a
// command ending in ` &` runs in the background and is killed by PID when the
// block ends. The format is documented in docs/README.md#for-contributors.
#include <signal.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <regex>
#include <sstream>
#include <string>

#include "doctest.h"
#include "harness.hpp"
#include "markdown.hpp"

namespace fs = std::filesystem;
using namespace test;

namespace {

// The programs a stage directory may hold; stage=DIR links them as ./NAME.
const char* const kStagePrograms[] = {"server", "client", "server_fork", "server_epoll"};

// A temporary directory that looks like the repository root: a symlink to
// every top-level entry, except the ./server-style links, which point at
// stage=DIR's programs (or are absent), so a block never depends on which
// `make stepN` ran last.
class BlockDir {
  public:
    explicit BlockDir(const std::string& stage, std::vector<std::string>& errors) {
        std::string templ = "/tmp/socktest-docrun-XXXXXX";
        if (!::mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
        path_ = templ;
        for (const auto& e : fs::directory_iterator(repo_path(""))) {
            const std::string name = e.path().filename().string();
            bool program = false;
            for (const char* p : kStagePrograms)
                program = program || name == p;
            if (!program && name != ".git") fs::create_symlink(e.path(), path_ / name);
        }
        if (stage.empty()) return;
        if (!fs::is_directory(repo_path(stage))) {
            errors.push_back("stage=" + stage + ": no such directory");
            return;
        }
        int linked = 0;
        for (const char* p : kStagePrograms) {
            const fs::path bin = repo_path(stage + "/" + p);
            if (fs::exists(bin)) {
                fs::create_symlink(bin, path_ / p);
                ++linked;
            }
        }
        if (linked == 0) errors.push_back("stage=" + stage + ": no programs built there");
    }
    ~BlockDir() {
        std::error_code ignored;
        fs::remove_all(path_, ignored);
    }
    BlockDir(const BlockDir&) = delete;
    BlockDir& operator=(const BlockDir&) = delete;
    const fs::path& path() const { return path_; }

  private:
    fs::path path_;
};

std::string shell_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s)
        out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

// A free port that no socket of this machine names at all, not even as the
// peer of a TIME_WAIT entry (/proc/net/tcp lists those too): a block may
// filter `ss` by `dport = :PORT`, and an entry an earlier block left behind
// with that peer port would show up in it.
int unseen_free_port() {
    for (int attempt = 0; attempt < 50; ++attempt) {
        const int port = free_port();
        char hex[8];
        std::snprintf(hex, sizeof hex, ":%04X ", port);
        if (read_file("/proc/net/tcp").find(hex) == std::string::npos &&
            read_file("/proc/net/tcp6").find(hex) == std::string::npos) {
            return port;
        }
    }
    return free_port();
}

// The bash script for a block. Before each command it prints a separator
// "\x1e<index>\x1e\n" so the output can be cut per command afterwards.
std::string script_for(const docs::RunSpec& spec, const fs::path& dir) {
    std::ostringstream s;
    s << "exec 2>&1\n"
      << "cd " << shell_quote(dir.string()) << " || exit 99\n"
      << "__jobs=()\n"
      << "__stop() { for p in \"${__jobs[@]}\"; do kill \"$p\" 2>/dev/null; done; wait; }\n"
      << "trap __stop EXIT\n"
      // Wait (at most 5 s, less if the job dies) until FILE has LINES lines; show them.
      << "__await() {\n"
      << "  local i\n"
      << "  for ((i = 0; i < 500; i++)); do\n"
      << "    [ \"$(wc -l < \"$1\")\" -ge \"$2\" ] && break\n"
      << "    kill -0 \"$3\" 2>/dev/null || break\n"
      << "    sleep 0.01\n"
      << "  done\n"
      << "  head -n \"$2\" \"$1\"\n"
      << "}\n";
    for (std::size_t i = 0; i < spec.commands.size(); ++i) {
        const auto& c = spec.commands[i];
        s << "printf '\\036%d\\036\\n' " << i << "\n";
        if (c.background) {
            // Leading redirections apply first, so the command's own
            // redirections (2>server.log) still win; $! is the program's PID.
            const std::string out = ".docs-job-" + std::to_string(i);
            s << ": >" << out << "\n"
              << ">" << out << " 2>&1 " << c.text << " &\n"
              << "__jobs+=($!); echo $! >> .docs-run-pids\n"
              << "__await " << out << " " << c.expected.size() << " $!\n";
        } else {
            s << c.text << "\n";
        }
    }
    return s.str();
}

// The output cut per command.
std::map<std::size_t, std::vector<std::string>> split_output(const std::string& out) {
    std::map<std::size_t, std::vector<std::string>> per_command;
    static const std::regex separator("\x1e([0-9]+)\x1e\n");
    std::size_t current = 0;
    bool started = false;
    std::size_t pos = 0;
    auto add = [&](const std::string& chunk) {
        if (!started) return;
        auto& lines = per_command[current];
        for (const auto& l : docs::split_lines(chunk))
            lines.push_back(l);
    };
    for (std::sregex_iterator it(out.begin(), out.end(), separator), end; it != end; ++it) {
        add(out.substr(pos, static_cast<std::size_t>(it->position()) - pos));
        current = std::stoul((*it)[1]);
        per_command[current];
        started = true;
        pos = static_cast<std::size_t>(it->position() + it->length());
    }
    add(out.substr(pos));
    return per_command;
}

void trim_trailing_empty(std::vector<std::string>& lines) {
    while (!lines.empty() && lines.back().find_first_not_of(" \t\r") == std::string::npos)
        lines.pop_back();
}

std::string show(const std::vector<std::string>& lines) {
    std::string out;
    for (const auto& l : lines)
        out += "    | " + l + "\n";
    return out.empty() ? "    (nothing)\n" : out;
}

// Run one block; returns what went wrong (nothing: the doc is right).
std::vector<std::string> run_block(docs::RunSpec spec) {
    std::vector<std::string> failures = spec.errors;
    if (!failures.empty()) return failures;

    // Free ports in place of the ones the doc shows.
    for (const auto& port : spec.ports) {
        const std::string fresh = std::to_string(unseen_free_port());
        for (auto& c : spec.commands) {
            c.text = docs::replace_number(c.text, port, fresh);
            for (auto& l : c.expected)
                l = docs::replace_number(l, port, fresh);
        }
    }
    BlockDir dir(spec.stage, failures);
    if (!failures.empty()) return failures;

    const fs::path script = dir.path() / ".docs-run.sh";
    const fs::path output = dir.path() / ".docs-run.out";
    write_file(script.string(), script_for(spec, dir.path()));
    std::optional<int> status;
    {
        Child bash({"bash", script.string()},
                   SpawnOptions{false, "", output.string(), {"LC_ALL=C"}});
        status = bash.wait(std::chrono::seconds(spec.timeout_s));
        if (!status) {
            // Over time: kill every background job by its PID, then the bash
            // (its destructor kills its process group too).
            std::istringstream pids(read_file((dir.path() / ".docs-run-pids").string()));
            for (pid_t pid; pids >> pid;)
                ::kill(pid, SIGKILL);
        }
    }
    const std::string out = read_file(output.string());
    if (!status) {
        failures.push_back("did not finish within " + std::to_string(spec.timeout_s) +
                           " s; output so far:\n" + out);
    }
    auto actual = split_output(out);
    for (std::size_t i = 0; i < spec.commands.size(); ++i) {
        auto expected = spec.commands[i].expected;
        auto got = actual[i];
        trim_trailing_empty(expected);
        trim_trailing_empty(got);
        if (!docs::output_matches(expected, got)) {
            failures.push_back("$ " + spec.commands[i].text +
                               (spec.commands[i].background ? " &" : "") + "\n  the doc shows:\n" +
                               show(expected) + "  it printed:\n" + show(got));
        }
    }
    return failures;
}

docs::RunSpec spec_of(const std::string& markdown) {
    const auto blocks = docs::blocks_of(markdown);
    REQUIRE(blocks.size() == 1);
    return docs::parse_run(blocks[0]);
}

}  // namespace

TEST_CASE("runnable: `...` and spaces in expected output") {
    using docs::line_matches;
    CHECK(line_matches("listening on 127.0.0.1:7001", "listening on 127.0.0.1:7001"));
    CHECK_FALSE(line_matches("listening on 127.0.0.1:7001", "listening on 127.0.0.1:7002"));
    CHECK(line_matches("127.0.0.1:... closed, 6 bytes", "127.0.0.1:41234 closed, 6 bytes"));
    CHECK_FALSE(line_matches("127.0.0.1:... closed, 6 bytes", "127.0.0.1:41234 closed, 7 bytes"));
    CHECK(line_matches("LISTEN 0 16 127.0.0.1:7001", "LISTEN 0      16        127.0.0.1:7001  "));
    CHECK(line_matches("Local Address:Port  Peer Address:Port Process",
                       "Local Address:Port   Peer Address:PortProcess"));
    CHECK_FALSE(line_matches("LISTEN 0 16", "LISTEN 0 160"));
    CHECK_FALSE(line_matches("LISTEN 0 16", "LISTEN 1 16"));
    CHECK(line_matches("a (b) [c] *d+ $e ^f", "a (b) [c] *d+ $e ^f"));
    CHECK_FALSE(line_matches("a.c", "abc"));  // a single '.' is literal

    using docs::output_matches;
    using V = std::vector<std::string>;
    CHECK(output_matches(V{"a", "...", "z"}, V{"a", "b", "c", "z"}));
    CHECK(output_matches(V{"a", "...", "z"}, V{"a", "z"}));
    CHECK_FALSE(output_matches(V{"a", "...", "z"}, V{"a", "b"}));
    CHECK_FALSE(output_matches(V{"a"}, V{"a", "b"}));  // nothing unshown may be printed
    CHECK_FALSE(output_matches(V{"a", "b"}, V{"a"}));
}

TEST_CASE("runnable: a block quoted inside a longer fence is not a block") {
    const auto blocks = docs::blocks_of(
        "````markdown\n<!-- run -->\n```console\n$ false\n```\n"
        "````\n");
    REQUIRE(blocks.size() == 1);
    CHECK(blocks[0].info == "markdown");
    CHECK(blocks[0].directive.empty());
}

TEST_CASE("runnable: blocks are parsed into commands, options and expected lines") {
    const auto blocks = docs::blocks_of(
        "<!-- run stage=step1_echo port=7001 timeout=99 -->\n"
        "```console\n"
        "$ ./server --port 7001 &\n"
        "listening on 127.0.0.1:7001\n"
        "$ echo hi # says hi\n"
        "hi\n"
        "```\n");
    REQUIRE(blocks.size() == 1);
    const auto spec = docs::parse_run(blocks[0]);
    CHECK(spec.errors.empty());
    CHECK(spec.stage == "step1_echo");
    CHECK(spec.ports == std::vector<std::string>{"7001"});
    CHECK(spec.timeout_s == 60);  // capped
    REQUIRE(spec.commands.size() == 2);
    CHECK(spec.commands[0].background);
    CHECK(spec.commands[0].text == "./server --port 7001");
    CHECK(spec.commands[1].expected == std::vector<std::string>{"hi"});
    CHECK(docs::replace_number("port 7001, not 17001 or 70012", "7001", "40000") ==
          "port 40000, not 17001 or 70012");
    CHECK_FALSE(docs::parse_run(docs::blocks_of("<!-- run colour=red -->\n```\n$ x\n```\n")[0])
                    .errors.empty());
}

TEST_CASE("runnable: a session is run for real; a wrong output is caught; jobs end") {
    // Made-up blocks (not docs) through the same machinery.
    const auto started = std::chrono::steady_clock::now();
    const auto good =
        run_block(spec_of("<!-- run port=7001 -->\n```console\n"
                          "$ sleep 30 &\n"
                          "$ echo one; echo two >&2\n"
                          "one\ntwo\n"
                          "$ printf 'port %s' 7001\n"
                          "port 7001\n"
                          "$ ls\n"
                          "...\n"
                          "Makefile\n"
                          "...\n"
                          "```\n"));
    CHECK_MESSAGE(good.empty(), (good.empty() ? "" : good.front()));
    // The background `sleep 30` was killed by PID at the end of the block.
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(5));

    const auto bad =
        run_block(spec_of("<!-- run -->\n```console\n"
                          "$ echo one; echo two\n"
                          "one\nthree\n"
                          "```\n"));
    REQUIRE(bad.size() == 1);
    CHECK(bad[0].find("$ echo one; echo two") != std::string::npos);
    CHECK(bad[0].find("| two") != std::string::npos);

    const auto slow =
        run_block(spec_of("<!-- run timeout=1 -->\n```console\n"
                          "$ sleep 10\n"
                          "```\n"));
    REQUIRE_FALSE(slow.empty());
    CHECK(slow[0].find("did not finish within 1 s") != std::string::npos);
}

TEST_CASE("runnable: every <!-- run --> block in the docs prints what the doc shows") {
    int blocks = 0;
    for (const auto& md : docs::markdown_files()) {
        for (const auto& b : docs::blocks_of(read_file(md.string()))) {
            if (b.directive != "run" && b.directive.rfind("run ", 0) != 0) continue;
            const std::string where = docs::relative(md) + ":" + std::to_string(b.line);
            for (const auto& failure : run_block(docs::parse_run(b)))
                FAIL_CHECK("runnable block " << where << ": " << failure);
            ++blocks;
        }
    }
    CHECK(blocks >= 5);
}
