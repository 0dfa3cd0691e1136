#!/usr/bin/env python3
"""tests/grade/mutate.py: does the grader catch bugs? Seed them and see.

  mutate.py --stage N --build build/<variant>      (CXX, CXXFLAGS, LDFLAGS from make)

tests/grade/mutations/stageN.txt lists deliberate bugs, each a search and
replace on a copy of one reference source file, and the check of
tests/grade/stageN.checks that must catch it. Each mutant is compiled beside
the build, put in place of its program, and that one check is run against it
(grade.py --only). A search text that is not in the file exactly once stops
everything, naming the mutation: the reference changed, so the mutation must
be brought up to date. The last lines are `caught K of N` and
"K passed, M failed".
"""
import argparse
import os
import re
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
STAGE_DIRS = {"1": "step1_echo", "2": "step2_multiclient", "3": "step3_tls"}


class Mutation:
    def __init__(self, name):
        self.name, self.file, self.check, self.hunks = name, None, None, []
        self.program = None


def parse(path):
    programs, mutations = {}, []
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("=== program "):
            name, _, extra = line[len("=== program "):].partition(":")
            programs[name.strip()] = extra.split()
        elif line.startswith("## "):
            mutations.append(Mutation(line[3:].strip()))
        elif line.startswith("file: "):
            mutations[-1].file = line[6:].strip()
        elif line.startswith("program: "):
            mutations[-1].program = line[9:].strip()
        elif line.startswith("check: "):
            mutations[-1].check = line[7:].strip()
        elif line == "<<<<":
            search, replace = [], []
            i += 1
            while lines[i] != "====":
                search.append(lines[i])
                i += 1
            i += 1
            while lines[i] != ">>>>":
                replace.append(lines[i])
                i += 1
            mutations[-1].hunks.append(("\n".join(search), "\n".join(replace)))
        elif line.strip() and not line.startswith("#"):
            sys.exit("%s:%d: unexpected line %r" % (path, i + 1, line))
        i += 1
    for m in mutations:
        if not (m.file and m.check and m.hunks):
            sys.exit("%s: mutation %r needs file:, check: and a <<<< ==== >>>> hunk"
                     % (path, m.name))
    return programs, mutations


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--stage", required=True, choices=sorted(STAGE_DIRS))
    parser.add_argument("--build", required=True)
    parser.add_argument("--only", help="one mutation, by its name")
    args = parser.parse_args()
    stage = STAGE_DIRS[args.stage]
    build = os.path.abspath(args.build)
    cxx = os.environ.get("CXX", "g++")
    # Warnings stay warnings here: a mutant may leave a variable unused.
    cxxflags = [f for f in shlex.split(os.environ.get("CXXFLAGS", "-O2 -std=c++20"))
                if f not in ("-Werror", "-g", "-MMD", "-MP")]
    ldflags = shlex.split(os.environ.get("LDFLAGS", ""))
    common_objs = sorted(os.path.join(build, "common", f)
                         for f in os.listdir(os.path.join(build, "common")) if f.endswith(".o"))

    programs, mutations = parse(os.path.join(HERE, "mutations", "stage%s.txt" % args.stage))
    checks = open(os.path.join(HERE, "stage%s.checks" % args.stage), encoding="utf-8").read()
    if args.only:
        mutations = [m for m in mutations if m.name == args.only]
    caught = 0
    for m in mutations:
        # The file may be another source of the program (relay.cpp, relay.hpp,
        # or ../step2_multiclient/relay.cpp); `program:` then names the program.
        program = m.program or os.path.splitext(os.path.basename(m.file))[0]
        if program not in programs:
            sys.exit("mutation %r: %s is not a program of %s (=== program lines)"
                     % (m.name, program, stage))
        if " | %s | " % m.check not in checks:
            sys.exit("mutation %r: no check %r in stage%s.checks" % (m.name, m.check, args.stage))
        rel = os.path.normpath(os.path.join(stage, m.file))  # from the repository's root
        source = open(os.path.join(REPO, rel), encoding="utf-8").read()
        # The exercise's lesson markers are no part of the code a bug is seeded in.
        source = re.sub(r"(?m)^[ \t]*// \[/?lesson(:[\w-]+)?\][ \t]*\n", "", source)
        for search, replace in m.hunks:
            count = source.count(search)
            if count != 1:
                sys.exit("mutation %r: its search text is in %s/%s %d times, not once; the "
                         "reference changed: update tests/grade/mutations/stage%s.txt:\n%s"
                         % (m.name, stage, m.file, count, args.stage, search))
            source = source.replace(search, replace)
        work = os.path.join(build, "mutants", stage, slug(m.name))
        os.makedirs(work, exist_ok=True)
        extra = programs[program]
        libs = [e for e in extra if not e.endswith(".o")]
        # The program's own sources: its main file, and the objects it links
        # that are built from this repository's sources (relay.o, chat.o ...).
        main_rel = os.path.join(stage, program + ".cpp")
        linked = [os.path.splitext(e)[0] + ".cpp" for e in extra if e.endswith(".o")]
        with open(os.path.join(work, os.path.basename(rel)), "w", encoding="utf-8") as f:
            f.write(source)
        if rel.endswith(".hpp"):
            # A header: every source beside it is compiled from a copy beside
            # the mutant, so that its #include "x.hpp" finds the mutant.
            rebuilt = [r for r in [main_rel] + linked
                       if os.path.dirname(r) == os.path.dirname(rel)]
            for r in rebuilt:
                with open(os.path.join(work, os.path.basename(r)), "w", encoding="utf-8") as f:
                    f.write(open(os.path.join(REPO, r), encoding="utf-8").read())
            srcs = [os.path.join(work, os.path.basename(r)) for r in rebuilt]
        else:
            rebuilt = [rel] + ([main_rel] if main_rel != rel else [])
            srcs = [os.path.join(work, os.path.basename(rel))] + \
                [os.path.join(REPO, r) for r in rebuilt[1:]]
        binary = os.path.join(work, program)
        objs = [os.path.join(build, e) for e in extra if e.endswith(".o")
                and os.path.splitext(e)[0] + ".cpp" not in rebuilt]
        # -iquote: the copy's "../common/x.hpp" resolves as the original's does.
        iquote = []
        for d in sorted({stage, os.path.dirname(rel)}):
            iquote += ["-iquote", os.path.join(REPO, d)]
        compile_cmd = ([cxx] + cxxflags + iquote + srcs + ["-o", binary] + objs + common_objs
                       + ldflags + libs)
        built = subprocess.run(compile_cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if built.returncode != 0:
            print(built.stdout.decode(errors="replace"))
            sys.exit("mutation %r does not compile" % m.name)
        started = time.monotonic()
        grade = subprocess.run(
            # 30 s: every check takes a few seconds on the reference; a
            # mutant that stalls it is caught when it does not finish.
            [sys.executable, os.path.join(HERE, "grade.py"), "--stage", args.stage, "--build",
             build, "--only", m.check, "--timeout", "30", "%s=%s" % (program, binary)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out = grade.stdout.decode(errors="replace")
        if "grade:" in out and "FAIL" not in out and "PASS" not in out:
            print(out)
            sys.exit("mutation %r: the grader could not run" % m.name)
        if grade.returncode != 0:
            caught += 1
            print("caught  %s  (by: %s; %.0f s)" % (m.name, re.sub(r"^stage \d+:? ", "", m.check),
                                                     time.monotonic() - started), flush=True)
        else:
            print("MISSED  %s  (%s passed with it)" % (m.name, m.check), flush=True)
    print("caught %d of %d" % (caught, len(mutations)))
    print("%d passed, %d failed" % (caught, len(mutations) - caught))
    return 0 if caught == len(mutations) else 1


if __name__ == "__main__":
    sys.exit(main())
