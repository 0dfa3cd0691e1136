#!/usr/bin/env python3
"""tests/docs/update-snippets.py: re-paste every quoted snippet from its source.

    make docs-snippets        (or: python3 tests/docs/update-snippets.py)

After marked code changes (`// [docs:NAME]` ... `// [/docs]`), the test
`make test-docs` fails on each doc that quotes the old lines. This rewrites
each fenced block that follows `<!-- snippet: PATH NAME -->` in docs/**/*.md
and README.md with the current region (marker lines dropped, common
indentation removed), the same rule tests/docs/markdown.hpp checks. Read the
diff afterwards: the prose around a snippet may need to change too.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
OPEN = re.compile(r"^\s*(?://|#)\s*\[docs:([A-Za-z0-9_.-]+)\]\s*$")
CLOSE = re.compile(r"^\s*(?://|#)\s*\[/docs\]\s*$")
# What `make exercise` cuts out (tests/grade/exercise.py): not quoted.
LESSON = re.compile(r"^\s*//\s*\[(lesson:[A-Za-z0-9_-]+|/lesson)\]\s*$")
SNIPPET = re.compile(r"^\s*<!--\s*snippet:\s*(\S+)\s+(\S+)\s*-->\s*$")
FENCE = re.compile(r"^(`{3,}|~{3,})")


def regions(path):
    out, stack = {}, []
    for line in path.read_text().split("\n"):
        m = OPEN.match(line)
        if m:
            stack.append((m.group(1), []))
        elif LESSON.match(line):
            continue
        elif CLOSE.match(line):
            if not stack:
                continue
            name, body = stack.pop()
            indent = min((len(l) - len(l.lstrip(" \t")) for l in body if l.strip()), default=0)
            out[name] = [l[indent:] if len(l) > indent else "" for l in body]
        else:
            for _, body in stack:
                body.append(line)
    return out


def closing_fence(fence):
    return re.compile("^" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}\s*$")


def update(md):
    lines = md.read_text().split("\n")
    out, i, changed, problems = [], 0, 0, []
    while i < len(lines):
        out.append(lines[i])
        m = SNIPPET.match(lines[i])
        f = FENCE.match(lines[i + 1]) if m and i + 1 < len(lines) else None
        if not (m and f):
            other = FENCE.match(lines[i])
            i += 1
            if other:  # any other code block: copy it untouched (it may quote examples)
                closing = closing_fence(other.group(1))
                while i < len(lines):
                    out.append(lines[i])
                    i += 1
                    if closing.match(out[-1]):
                        break
            continue
        src, name = ROOT / m.group(1), m.group(2)
        fence = f.group(1)
        end = i + 2
        closing = closing_fence(fence)
        while end < len(lines) and not closing.match(lines[end]):
            end += 1
        body = lines[i + 2:end]
        found = regions(src).get(name) if src.exists() else None
        if found is None:
            problems.append(f"{md.relative_to(ROOT)}:{i + 1}: no region [docs:{name}] in {m.group(1)}")
        elif found != body:
            body = found
            changed += 1
        out.append(lines[i + 1])
        out.extend(body)
        if end < len(lines):
            out.append(lines[end])
        i = end + 1
    if changed:
        md.write_text("\n".join(out))
    return changed, problems


def main():
    files = [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))
    total, problems = 0, []
    for md in files:
        changed, p = update(md)
        total += changed
        problems += p
        if changed:
            print(f"{md.relative_to(ROOT)}: {changed} snippet(s) updated")
    for p in problems:
        print(p, file=sys.stderr)
    print(f"{total} snippet(s) updated")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
