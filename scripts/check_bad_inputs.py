#!/usr/bin/env python3
"""Checks docs/BAD_INPUTS.md against the sources, so that the catalogue cannot rot.

For every row of the catalogue's tables (| # | input | what dtrain says | exit | test |):
  - the test column names a file under tests/ and a test `Suite.Name` defined in it
    (TEST, TEST_F or TEST_P);
  - every quoted piece of the message column (text in backticks, split at the ellipsis
    that abbreviates names and numbers) occurs in that test file, a header beside it, or
    dtrain's sources
    (core/, datasets/, distributed/, launcher/, ops/), so a changed message shows up here;
  - the exit column is one of dtrain's exit codes, or a dash;
  - row ids are unique and there are at least --min rows (60 by default).
Exit status 0 when all holds; 1 with one line per problem otherwise. Runs in well under
a second (CTest: bad_inputs_catalogue).
"""
import argparse
import os
import re
import sys

EXIT_CODES = {"0", "1", "2", "3", "75", "86", "—"}
SOURCE_DIRS = ["core", "datasets", "distributed", "launcher", "ops"]
MIN_PIECE = 6  # shorter quoted pieces ("cuda:0") are context, not checked


def source_text(root):
    parts = []
    for d in SOURCE_DIRS:
        for dirpath, _, files in os.walk(os.path.join(root, d)):
            for f in files:
                if f.endswith((".cpp", ".h", ".cu", ".cuh")):
                    with open(os.path.join(dirpath, f), encoding="utf-8", errors="replace") as fh:
                        parts.append(fh.read())
    return "\n".join(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    ap.add_argument("--min", type=int, default=60)
    args = ap.parse_args()
    root = os.path.abspath(args.root)
    catalogue = os.path.join(root, "docs", "BAD_INPUTS.md")
    with open(catalogue, encoding="utf-8") as fh:
        lines = fh.read().splitlines()

    sources = source_text(root)
    test_files = {}
    problems = []
    ids = set()
    rows = 0
    test_cell = re.compile(r"^`(tests/[^`]+)`\s+`([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)`$")
    for n, line in enumerate(lines, 1):
        if not line.startswith("| ") or line.startswith("| #") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5:
            problems.append(f"BAD_INPUTS.md:{n}: expected 5 columns, found {len(cells)}")
            continue
        row_id, _, message, exit_code, test = cells
        rows += 1
        where = f"BAD_INPUTS.md:{n} ({row_id})"
        if row_id in ids:
            problems.append(f"{where}: the id {row_id} is used twice")
        ids.add(row_id)
        if exit_code not in EXIT_CODES:
            problems.append(f"{where}: exit code '{exit_code}' is not one of dtrain's")
        m = test_cell.match(test)
        if not m:
            problems.append(f"{where}: the test column must read `tests/FILE.cpp` `Suite.Name`, not {test}")
            continue
        path, suite, name = m.groups()
        full = os.path.join(root, path)
        if path not in test_files:
            try:
                with open(full, encoding="utf-8") as fh:
                    test_files[path] = fh.read()
            except OSError:
                test_files[path] = None
        text = test_files[path]
        if text is None:
            problems.append(f"{where}: {path} does not exist")
            continue
        # The test's own helpers (tests/distributed/cases.h) may hold the checks.
        helpers = "\n".join(
            open(os.path.join(os.path.dirname(full), h), encoding="utf-8", errors="replace").read()
            for h in sorted(os.listdir(os.path.dirname(full))) if h.endswith(".h"))
        if not re.search(r"\bTEST(_F|_P)?\(\s*%s\s*,\s*%s\s*\)" % (re.escape(suite), re.escape(name)), text):
            problems.append(f"{where}: {path} defines no test {suite}.{name}")
        for quoted in re.findall(r"`([^`]+)`", message):
            for piece in quoted.split("…"):
                piece = piece.strip()
                if len(piece) >= MIN_PIECE and piece not in text and piece not in helpers and piece not in sources:
                    problems.append(f"{where}: '{piece}' occurs neither in {path} nor in dtrain's sources")
    if rows < args.min:
        problems.append(f"BAD_INPUTS.md: {rows} kinds of bad input, fewer than {args.min}")
    for p in problems:
        print(p)
    if not problems:
        print(f"docs/BAD_INPUTS.md: {rows} kinds of bad input, each with an existing test; every quoted message found")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
