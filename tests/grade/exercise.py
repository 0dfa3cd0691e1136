#!/usr/bin/env python3
"""tests/grade/exercise.py: make a stage's exercise from its reference source.

  exercise.py STAGE_DIR [--out DIR]      (default DIR: STAGE_DIR/exercise)

tests/grade/exercise/STAGE_DIR.todo names the lessons: each `=== FILE NAME`
entry replaces the region `// [docs:NAME]` ... `// [/docs]` of STAGE_DIR/FILE
(the markers the docs quote code by), or `// [lesson:NAME]` ... `// [/lesson]`
where no doc quotes the lesson, with the entry's text: what to write,
where to read, and a todo() call that stops the program there and says so.
Everything outside those regions is the reference, as it is. A region that is
missing, or there twice, stops the script naming it. A file that already
exists in DIR is never overwritten: it is the learner's.
"""
import argparse
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

TODO_FUNCTION = '''\
// ---- Exercise, made by `make exercise` from the stage's own source. ----
// Each TODO below says what to write and where to read about it; until it is
// written, reaching it stops the program and says which TODO it was.
#include <cstdio>
#include <cstdlib>
[[maybe_unused, noreturn]] static void todo(int n, const char* what, const char* section) {
    std::fprintf(stderr, "TODO %d: %s is not written yet; read %s\\n", n, what, section);
    if (const char* log = std::getenv("EXERCISE_TODO_LOG")) {  // for make grade
        if (FILE* f = std::fopen(log, "a")) {
            std::fprintf(f, "TODO %d: %s is not written yet; read %s\\n", n, what, section);
            std::fclose(f);
        }
    }
    std::exit(3);
}
// ---- End of the exercise's helper; the program follows. ----

'''


def parse_todo(path):
    """{file: {region: [lines]}}, {program: [extra link inputs]}, [names to link]"""
    regions, programs, links = {}, {}, []
    current = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("=== link "):
                links.append(line[len("=== link "):].strip())
                current = None
            elif line.startswith("=== program "):
                name, _, extra = line[len("=== program "):].partition(":")
                programs[name.strip()] = extra.split()
                current = None
            elif line.startswith("=== "):
                file, region = line[4:].split()
                current = regions.setdefault(file, {}).setdefault(region, [])
            elif current is not None:
                current.append(line)
            elif line and not line.startswith("#"):
                sys.exit("%s: text outside an entry: %r" % (path, line))
    for file in regions:
        for region, lines in regions[file].items():
            while lines and not lines[-1].strip():
                lines.pop()
    return regions, programs, links


def cut(source, regions, name):
    """The source with each named region replaced and every marker dropped."""
    out = []
    lines = source.split("\n")
    i = 0
    seen = set()
    while i < len(lines):
        m = re.match(r"^(\s*)// \[(docs|lesson):([\w-]+)\]\s*$", lines[i])
        if not m:
            if not re.match(r"^\s*// \[/(docs|lesson)\]\s*$", lines[i]):
                out.append(lines[i])
            i += 1
            continue
        indent, kind, region = m.groups()
        end = i + 1
        while end < len(lines) and not re.match(r"^\s*// \[/%s\]\s*$" % kind, lines[end]):
            end += 1
        if end == len(lines):
            sys.exit("exercise: %s: [%s:%s] has no [/%s]" % (name, kind, region, kind))
        if region in regions:
            if region in seen:
                sys.exit("exercise: %s: region [docs:%s] is there twice" % (name, region))
            seen.add(region)
            out += [(indent + l) if l else "" for l in regions[region]]
            i = end + 1
        else:
            i += 1  # keep the region's code, drop its marker
    missing = set(regions) - seen
    if missing:
        sys.exit("exercise: %s has no region %s: update tests/grade/exercise/*.todo"
                 % (name, ", ".join("[docs:%s] or [lesson:%s]" % (r, r) for r in sorted(missing))))
    return "\n".join(out)


def with_helper(source, include_prefix, stage_prefix):
    """Relative includes fixed for the new directory; todo() after the header comment."""
    source = source.replace('#include "../', '#include "' + include_prefix)
    source = re.sub(r'#include "(?!\.\./)', '#include "' + stage_prefix, source)
    lines = source.split("\n")
    head = 0
    while head < len(lines) and (lines[head].startswith("//") or not lines[head].strip()):
        head += 1
    return "\n".join(lines[:head]) + "\n" + TODO_FUNCTION + "\n".join(lines[head:])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("stage_dir")
    parser.add_argument("--out")
    args = parser.parse_args()
    stage = args.stage_dir.strip("/")
    out = os.path.abspath(args.out or os.path.join(REPO, stage, "exercise"))
    regions, programs, links = parse_todo(os.path.join(HERE, "exercise", stage + ".todo"))

    rel_root = os.path.relpath(REPO, out)
    made = {}
    for file, file_regions in regions.items():
        src_path = os.path.join(REPO, stage, file)
        with open(src_path, encoding="utf-8") as f:
            source = f.read()
        text = cut(source, file_regions, os.path.join(stage, file))
        made[file] = with_helper(text, rel_root + "/",
                                 os.path.relpath(os.path.join(REPO, stage), out) + "/")
    rel_out = os.path.relpath(out, REPO)
    made["Makefile"] = makefile(stage, rel_out, rel_root, programs)

    os.makedirs(out, exist_ok=True)
    for file, text in made.items():
        path = os.path.join(out, file)
        shown = os.path.relpath(path, os.getcwd())
        if os.path.exists(path):
            print("kept %s (yours: remove it for a fresh copy)" % shown)
            continue
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        print("wrote %s" % shown)
    # What the programs find beside themselves (stage 3's certs/, through
    # /proc/self/exe): a link to the stage's own.
    for name in links:
        path = os.path.join(out, name)
        if not os.path.lexists(path):
            os.symlink(os.path.relpath(os.path.join(REPO, stage, name), out), path)


def makefile(stage, rel_out, rel_root, programs):
    rules = []
    for name, extra in programs.items():
        objs = " ".join("$(BUILD)/" + e if e.endswith(".o") else "" for e in extra).strip()
        libs = " ".join(e for e in extra if not e.endswith(".o"))
        rules.append(
            "%s: $(BUILD)/$(HERE)/%s.o %s $(COMMON_OBJS) | deps\n"
            "\t$(CXX) -o $@ $(filter %%.o,$^) $(LDFLAGS) %s\n" % (name, name, objs, libs))
    return """\
# The exercise of %(stage)s, made by `make exercise` (tests/grade/exercise.py).
#   make            build it here (warnings are shown, not errors, while TODOs remain)
#   make grade      from the top: grade it with the project's own tests
include %(root)s/common/build.mk
CXXFLAGS := $(filter-out -Werror,$(CXXFLAGS))
HERE := %(here)s
PROGRAMS := %(programs)s

.PHONY: all clean
all: $(PROGRAMS)

%(rules)s
clean:
\trm -f $(PROGRAMS)
""" % {"stage": stage, "root": rel_root, "here": rel_out, "programs": " ".join(programs),
       "rules": "\n".join(rules)}


if __name__ == "__main__":
    main()
