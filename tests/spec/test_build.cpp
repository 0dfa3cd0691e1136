// SPEC.md "Build" and "Layout": what `make` does for a user at the top of the
// checkout and inside a stage directory.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "spec.hpp"

using namespace spec;
namespace fs = std::filesystem;

namespace {

const std::string kRoot = REPO_ROOT;

// Where a root-level symlink points now ("" when there is none), to put it back.
std::string link_of(const std::string& name) {
    std::error_code ec;
    const fs::path target = fs::read_symlink(kRoot + "/" + name, ec);
    return ec ? std::string() : target.string();
}

void restore_link(const std::string& name, const std::string& target) {
    const std::string path = kRoot + "/" + name;
    ::unlink(path.c_str());
    if (!target.empty()) REQUIRE(::symlink(target.c_str(), path.c_str()) == 0);
}

// The first line of `./NAME --help` in the repo root (which stage it is:
// the usage names the default port).
std::string help_of_root(const std::string& name) {
    std::string out;
    CHECK(shell("cd " + kRoot + " && ./" + name + " --help", &out) == 0);
    return out;
}

// A directory holding only the given tools, for a PATH without the others.
struct ToolDir {
    TempPath dir{"spec-tools"};
    explicit ToolDir(std::initializer_list<const char*> tools) {
        ::unlink(dir.str().c_str());  // a unique name; a directory goes there
        REQUIRE(::mkdir(dir.str().c_str(), 0755) == 0);
        for (const char* t : tools) {
            std::string where;
            REQUIRE(shell(std::string("command -v ") + t, &where) == 0);
            while (!where.empty() && where.back() == '\n')
                where.pop_back();
            REQUIRE(::symlink(where.c_str(), (dir.str() + "/" + t).c_str()) == 0);
        }
    }
    ~ToolDir() { std::filesystem::remove_all(dir.str()); }
};

}  // namespace

TEST_CASE(
    "build: `make step1` (step2) builds that stage; then ./server and ./client in the repo "
    "root run that stage") {
    // MAKEFLAGS from the `make test` that runs us (SANITIZE=1, CXX=...) is
    // inherited, so this builds nothing new; the links are put back after.
    const std::string before_server = link_of("server"), before_client = link_of("client"),
                      before_fork = link_of("server_fork");
    CHECK(shell("make -s -C " + kRoot + " step2 >/dev/null", nullptr, 300000ms) == 0);
    CHECK(help_of_root("server").find("(default 7002)") != std::string::npos);
    CHECK(help_of_root("client").find("PORT to 7002") != std::string::npos);
    CHECK(help_of_root("server_fork").rfind("usage: server_fork", 0) == 0);
    CHECK(shell("make -s -C " + kRoot + " step1 >/dev/null", nullptr, 300000ms) == 0);
    CHECK(help_of_root("server").find("(default 7001)") != std::string::npos);
    CHECK(help_of_root("client").find("PORT to 7001") != std::string::npos);
    CHECK_FALSE(fs::exists(fs::symlink_status(kRoot + "/server_fork")));  // not stage 1's
    if (fs::exists(kRoot + "/step3_tls")) {
        CHECK(shell("make -s -C " + kRoot + " step3 >/dev/null", nullptr, 300000ms) == 0);
        CHECK(help_of_root("server").find("(default 7003)") != std::string::npos);
        CHECK(help_of_root("client").find("PORT to 7003") != std::string::npos);
    }
    restore_link("server", before_server);
    restore_link("client", before_client);
    restore_link("server_fork", before_fork);
}

TEST_CASE("build: the root-level symlinks and the built binaries are git-ignored") {
    if (!fs::exists(kRoot + "/.git")) {
        MESSAGE("not a git checkout: nothing to check");
        return;
    }
    for (const char* path :
         {"server", "client", "server_fork", "step1_echo/server", "step1_echo/client",
          "step2_multiclient/server", "step2_multiclient/server_fork", "step2_multiclient/client",
          "step3_tls/server", "step3_tls/client", "step3_tls/certs/ca.key",
          "build/g++/common/net.o"}) {
        INFO(path);
        CHECK(shell("git -C " + kRoot + " check-ignore -q " + path) == 0);
    }
    CHECK(shell("git -C " + kRoot + " check-ignore -q step1_echo/server.cpp") == 1);
}

TEST_CASE(
    "build: `cd step1_echo && make && ./server` — the same from inside a stage; `make test` "
    "there runs that stage's tests") {
    for (const auto& stage :
         {std::pair{"step1_echo", "test-step1"}, std::pair{"step2_multiclient", "test-step2"},
          std::pair{"step3_tls", "test-step3"}}) {
        const std::string dir = stage.first, suite = stage.second;
        if (!fs::exists(kRoot + "/" + dir)) continue;  // a stage not in this checkout
        INFO(dir);
        std::string out;
        CHECK(shell("cd " + kRoot + "/" + dir + " && make -s >/dev/null && ./server --help", &out,
                    300000ms) == 0);
        CHECK(out.rfind("usage: server", 0) == 0);
        CHECK(shell("cd " + kRoot + "/" + dir + " && make -n test", &out) == 0);
        CHECK(out.find(suite) != std::string::npos);
    }
}

TEST_CASE(
    "build: when something is missing and it cannot install it, `make` stops with the exact "
    "apt-get line to run") {
    // A user who is not root and has no sudo, on a PATH without socat and
    // ncat (nothing is uninstalled: the PATH only hides them).
    ToolDir tools(
        {"sh", "make", "mkdir", "cat", "id", "grep", "nc", "g++", "openssl", "ss", "ps", "nproc"});
    const bool root = ::geteuid() == 0;
    const std::string as_user =
        root ? "setpriv --reuid nobody --regid nogroup --clear-groups " : std::string();
    // That user builds a copy of the sources: this checkout may sit where
    // nobody else can enter (a clone under /root, or in a `mktemp -d`).
    ToolDir sources({});
    REQUIRE(shell("tar -C " + kRoot + " --exclude=./build --exclude=./.git -cf - . | tar -C " +
                      sources.dir.str() + " -xf -" +
                      (root ? " && chown -R nobody:nogroup " + sources.dir.str() : ""),
                  nullptr, 60000ms) == 0);
    TempPath err("spec-deps-err");
    const int rc = shell(as_user + "env -i HOME=/tmp PATH=" + tools.dir.str() + " make -C " +
                             sources.dir.str() + " step1 >/dev/null 2>" + err.str(),
                         nullptr, 60000ms);
    const std::string text = read_file(err.str());
    INFO(text);
    CHECK(rc != 0);
    // "missing: socat ncat ..." and then the apt-get line for exactly those.
    const auto missing_at = text.find("missing:");
    REQUIRE(missing_at != std::string::npos);
    const std::string missing =
        text.substr(missing_at + 8, text.find('\n', missing_at) - missing_at - 8);
    CHECK(missing.find(" socat") != std::string::npos);
    CHECK(missing.find(" ncat") != std::string::npos);
    CHECK(text.find("\nrun: sudo apt-get update && sudo apt-get install -y" + missing + "\n") !=
          std::string::npos);
    CHECK(text.find("g++ ") == std::string::npos);  // stopped before compiling anything
}

TEST_CASE("build: when everything is there, the dependency check prints nothing") {
    std::string out;
    TempPath err("spec-deps-err");
    CHECK(shell(kRoot + "/common/check-deps.sh 2>" + err.str(), &out) == 0);
    CHECK(out.empty());
    CHECK(read_file(err.str()).empty());
}
