// tests/robustness/test_fuzz_replay.cpp: every fuzz seed and every input that
// ever broke a fuzz target, replayed through the same checks with the
// ordinary build (g++ or clang, with or without SANITIZE=1).
//
// libFuzzer finds inputs; this suite keeps them: a crash file copied to
// tests/fuzz/regressions/<target>/ stays a test forever.
#include <dirent.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "../fuzz/targets.hpp"
#include "doctest.h"
#include "harness.hpp"

using namespace test;

namespace {

// The regular files in a directory, sorted (README files excluded).
std::vector<std::string> files_in(const std::string& dir) {
    std::vector<std::string> out;
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return out;
    while (dirent* e = ::readdir(d)) {
        const std::string name = e->d_name;
        if (name == "." || name == ".." || name == "README") continue;
        out.push_back(dir + "/" + name);
    }
    ::closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}

void replay(const std::string& target,
            const std::function<void(std::span<const std::uint8_t>)>& check) {
    int replayed = 0;
    for (const char* kind : {"seeds", "regressions"}) {
        for (const std::string& path : files_in(repo_path("tests/fuzz/") + kind + "/" + target)) {
            const std::string bytes = read_file(path);
            INFO("input: " << path);
            CHECK_NOTHROW(
                check({reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()}));
            ++replayed;
        }
    }
    CHECK(replayed > 0);  // the seeds are there
}

}  // namespace

TEST_CASE("fuzz replay: line framer seeds and regressions") {
    replay("framer", fuzz::framer);
}

TEST_CASE("fuzz replay: chat command parser seeds and regressions") {
    replay("commands", fuzz::commands);
}

TEST_CASE("fuzz replay: whole input path through chat::Room, seeds and regressions") {
    replay("room", fuzz::room);
}
