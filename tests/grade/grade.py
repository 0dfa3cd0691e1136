#!/usr/bin/env python3
"""tests/grade/grade.py: grade a stage's programs with the project's own tests.

The checks are the doctest test cases listed, in the order a learner builds
the stage, in tests/grade/stageN.checks; each runs from its suite's binary
with GRADE_STAGE and GRADE_SERVER, GRADE_CLIENT ... set, so the tests start
the programs under grade instead of the reference (tests/support/harness.cpp,
repo_path). One line per check, PASS or FAIL; a failure says what was
expected, what came, and which doc section to read. The last line is
"N passed, M failed".

  grade.py --stage 1 --build build/g++ server=PATH [client=PATH ...]
           [--only NAME] [--first-failure]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
STAGE_DIRS = {"1": "step1_echo", "2": "step2_multiclient", "3": "step3_tls"}


class Check:
    def __init__(self, role, suite, name, section):
        self.role, self.suite, self.name, self.section = role, suite, name, section

    @property
    def label(self):
        # "stage 1: a short line ..." -> "a short line ..."; "stage 1 client: x" -> "client: x"
        return re.sub(r"^stage \d+:? ", "", self.name)


def read_checks(stage):
    path = os.path.join(HERE, "stage%s.checks" % stage)
    checks = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            fields = [x.strip() for x in line.split(" | ")]
            if len(fields) != 4:
                sys.exit("%s:%d: want ROLE | SUITE | TEST CASE | SECTION" % (path, number))
            checks.append(Check(*fields))
    return checks


def short(text, limit=300):
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + " ..."


def first_failure(case):
    """What to say about a failed test case: (expected, got, notes)."""
    for node in case.iter():
        if node.tag == "Expression" and node.get("success") == "false":
            original = node.findtext("Original", "").strip()
            expanded = node.findtext("Expanded", "").strip()
            notes = [i.text.strip() for i in node.findall("Info") if i.text and i.text.strip()]
            exc = node.findtext("Exception")
            if exc:
                notes.append("it threw: " + exc.strip())
            if expanded in ("false", "true") and notes:
                # REQUIRE_MESSAGE(cond, what was expected): the message says it
                return notes[-1], " ".join(notes[:-1]) or expanded, []
            return original, expanded, notes
        if node.tag == "Exception":
            return ("the check to run to its end",
                    "it stopped: " + (node.text or "").strip(), [])
        if node.tag == "Message" and node.get("type", "").startswith(("FAIL", "ERROR")):
            return "", node.findtext("Text", "").strip(), []
    return "", "the check failed", []


def run_check(check, build, env, timeout):
    """Returns (passed, lines to print, todo text)."""
    binary = os.path.join(build, "bin", "test-" + check.suite)
    if not os.access(binary, os.X_OK):
        sys.exit("grade: %s is missing (make %s)" % (binary, binary))
    # doctest's -tc is a comma-separated list of wildcards: a comma in a name
    # is matched by '?' instead.
    pattern = check.name.replace(",", "?")
    with tempfile.NamedTemporaryFile(prefix="grade-todo-") as todo:
        run_env = dict(env, EXERCISE_TODO_LOG=todo.name, TEST_TIMEOUT=str(timeout))
        try:
            proc = subprocess.run([binary, "-tc=" + pattern, "-r=xml", "--no-skipped-summary"],
                                  env=run_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  timeout=timeout + 15)
            out = proc.stdout.decode("utf-8", "replace")
        except subprocess.TimeoutExpired:
            out = ""
        todo_text = open(todo.name, encoding="utf-8", errors="replace").read().strip()
    cases = []
    try:
        root = ET.fromstring(out[out.index("<?xml"):])
        cases = [c for c in root.iter("TestCase") if c.get("skipped") != "true"]
    except (ValueError, ET.ParseError):
        # A report with bytes XML cannot hold (binary data in a value).
        if "</doctest>" in out:
            ok = 'test_case_success="true"' in out
            return ok, [] if ok else ["got:      the check failed (its report holds binary "
                                      "data; run the suite to see it)"], todo_text
    matching = [c for c in cases if c.get("name") == check.name]
    if not matching and cases == [] and "<TestCase" in out and "</doctest>" in out:
        sys.exit("grade: no test case named %r in suite %s: fix tests/grade/stage*.checks"
                 % (check.name, check.suite))
    if not matching:
        return False, ["expected: the check to finish", "got:      it did not finish within "
                       "%d s, or the test crashed" % timeout], todo_text
    case = matching[0]
    result = case.find("OverallResultsAsserts")
    if result is not None and result.get("test_case_success") == "true":
        return True, [], todo_text
    original, expanded, notes = first_failure(case)
    lines = []
    if original:
        lines.append("expected: " + short(original))
    lines.append("got:      " + short(expanded))
    lines += ["          " + short(n) for n in notes[:3]]
    return False, lines, todo_text


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stage", required=True, choices=sorted(STAGE_DIRS))
    parser.add_argument("--build", required=True, help="build/<variant> with bin/test-*")
    parser.add_argument("--only", help="run only the check with this test case name")
    parser.add_argument("--first-failure", action="store_true", help="stop at the first failure")
    parser.add_argument("--timeout", type=int, default=90, help="seconds per check")
    parser.add_argument("programs", nargs="+", help="ROLE=PATH: server=..., client=...")
    args = parser.parse_args()

    env = dict(os.environ, GRADE_STAGE=STAGE_DIRS[args.stage])
    given = {}
    for p in args.programs:
        role, _, path = p.partition("=")
        if not path:
            continue
        path = os.path.abspath(path)
        if not os.access(path, os.X_OK):
            sys.exit("grade: %s (%s) is not an executable file" % (path, role))
        given[role] = path
        env["GRADE_" + role.upper()] = path
    for role, path in sorted(given.items()):
        print("grading %s: %s" % (role, path))

    checks = read_checks(args.stage)
    if args.only:
        checks = [c for c in checks if c.name == args.only]
        if not checks:
            sys.exit("grade: no check named %r in stage %s" % (args.only, args.stage))
    passed = failed = 0
    skipped = set()
    number = 0  # the checks that run, numbered in order
    stops_told = {}  # "TODO N: ..." -> the check that told it first
    for check in checks:
        if check.role not in given:
            skipped.add(check.role)
            continue
        number += 1
        ok, lines, todo_text = run_check(check, args.build, env, args.timeout)
        print("%s %2d. %s" % ("PASS" if ok else "FAIL", number, check.label), flush=True)
        if ok:
            passed += 1
            continue
        failed += 1
        stop = short(todo_text.splitlines()[0]) if todo_text else ""
        if stop and stop in stops_told:
            # The same unwritten TODO stopped this check too: one line, not
            # the same story again for every check after it.
            print("         stopped at the same TODO as check %d" % stops_told[stop], flush=True)
            continue
        for line in lines:
            print("         " + line)
        if stop:
            stops_told[stop] = number
            print("         the program stopped at: " + stop)
        print("         read:     " + check.section, flush=True)
        if args.first_failure:
            break
    for role in sorted(skipped):
        print("skipped: the %s checks (no %s given)" % (role, role.upper() + "="))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
