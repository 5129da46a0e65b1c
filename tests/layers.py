#!/usr/bin/env python3
#
# The layer check of `make test`. The layers are written once, in the
# "layer" lines at the top of src/kiln.h; this reads them and the object
# files of the last build (nm), and fails on:
#   - a call (or a data reference) from a file to a file of a higher layer;
#   - a cycle between files, even inside one layer;
#   - SQL text (a string with SELECT/INSERT/UPDATE/DELETE/WITH) outside
#     src/store*.c;
#   - a read of result columns (kore_pgsql_getvalue, PQgetvalue, ...)
#     outside src/store*.c.
# Usage: tests/layers.py [objects directory]; the default is the flavor
# last built, .build/<flavor>/kiln/.objs. Last line: "layers: ok" or
# "layers: N problems".

import os
import re
import subprocess
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
SRC = os.path.join(ROOT, "src")

# TODO(issue 11): strict once the typed rows are merged (every column
# read then lives in store*.c): set to True.
ROWS_STRICT = True

ROW_READS = re.compile(r"\b(kore_pgsql_getvalue|kore_pgsql_getlength|"
                       r"kore_pgsql_ntuples|kore_pgsql_nfields|"
                       r"PQgetvalue|PQgetlength|PQntuples|PQnfields|"
                       r"PQgetisnull|PQfname)\s*\(")
SQL = re.compile(r"\b(SELECT|INSERT\s+INTO|UPDATE|DELETE\s+FROM|WITH)\s")
STRING = re.compile(r'"((?:[^"\\\n]|\\.)*)"')


def layers():
    """[(layer, [file, ...]), ...] from the top layer down."""
    out = []
    with open(os.path.join(SRC, "kiln.h")) as f:
        for line in f:
            m = re.match(r"^ \*\s+layer (\w+):\s*(.*)$", line)
            if m:
                out.append((m.group(1), m.group(2).split()))
            elif out and re.match(r"^ \*\s{10,}\S", line):
                out[-1][1].extend(line.lstrip(" *").split())
    return out


def objects_dir():
    if len(sys.argv) > 1:
        return sys.argv[1]
    try:
        with open(os.path.join(ROOT, ".build", "flavor")) as f:
            flavor = f.read().strip()
    except OSError:
        flavor = "dev"
    return os.path.join(ROOT, ".build", flavor, "kiln", ".objs")


def symbols(obj):
    """(defined, undefined) global symbols of one object file."""
    out = subprocess.run(["nm", "-P", "-g", obj], check=True,
                         capture_output=True, text=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        (undefined if parts[1] in ("U", "w", "v") else defined).add(
            parts[0])
    return defined, undefined


def cycles(files, edges):
    """Strongly connected components of more than one file (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, {})):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(files):
        if v not in index:
            visit(v)
    return out


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"),
                  text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def main():
    problems = []
    notes = []
    table = layers()
    if not table:
        print("layers: no 'layer' lines at the top of src/kiln.h")
        return 1
    rank, where = {}, {}
    for i, (name, files) in enumerate(table):
        for f in files:
            if f in rank:
                problems.append("%s.c is in two layers" % f)
            rank[f], where[f] = i, name

    sources = sorted(f[:-2] for f in os.listdir(SRC) if f.endswith(".c"))
    for f in sources:
        if f not in rank:
            problems.append("src/%s.c is in no layer: add it to a 'layer'"
                            " line at the top of src/kiln.h" % f)
    for f in rank:
        if f not in sources:
            problems.append("src/kiln.h places %s.c, which does not exist"
                            % f)

    objs = objects_dir()
    owner, refs = {}, {}
    for f in sources:
        obj = os.path.join(objs, f + ".c.o")
        if not os.path.exists(obj):
            print("layers: %s missing: build first (make build)" % obj)
            return 1
        if int(os.path.getmtime(obj)) < int(os.path.getmtime(
                os.path.join(SRC, f + ".c"))):
            print("layers: %s older than its source: build first" % obj)
            return 1
        defined, refs[f] = symbols(obj)
        for s in defined:
            owner[s] = f

    edges = {}
    for f in sources:
        for s in sorted(refs[f]):
            g = owner.get(s)
            if g is None or g == f:
                continue
            edges.setdefault(f, {}).setdefault(g, []).append(s)

    for f in sources:
        for g, syms in sorted(edges.get(f, {}).items()):
            if f in rank and g in rank and rank[g] < rank[f]:
                problems.append(
                    "up a layer: %s.c (%s) calls %s.c (%s): %s" %
                    (f, where[f], g, where[g], ", ".join(syms)))

    for comp in cycles(sources, edges):
        detail = []
        for f in comp:
            for g in comp:
                if g in edges.get(f, {}):
                    detail.append("%s -> %s (%s)" % (
                        f, g, ", ".join(edges[f][g][:3]) +
                        (", ..." if len(edges[f][g]) > 3 else "")))
        problems.append("cycle between files: %s\n    %s" %
                        (" ".join(c + ".c" for c in comp),
                         "\n    ".join(detail)))

    for f in sources:
        if f.startswith("store"):
            continue
        with open(os.path.join(SRC, f + ".c")) as fh:
            text = strip_comments(fh.read())
        for n, line in enumerate(text.split("\n"), 1):
            for lit in STRING.findall(line):
                if SQL.search(lit):
                    problems.append("SQL outside store*.c: src/%s.c:%d: "
                                    "\"%s\"" % (f, n, lit))
            m = ROW_READS.search(line)
            if m:
                msg = "result column read outside store*.c: " \
                      "src/%s.c:%d: %s" % (f, n, m.group(1))
                (problems if ROWS_STRICT else notes).append(msg)

    for n in notes:
        print("layers: note (not yet enforced): " + n)
    for p in problems:
        print("layers: " + p)
    if problems:
        print("layers: %d problems (the layers are at the top of "
              "src/kiln.h)" % len(problems))
        return 1
    print("layers: ok (%d files, %d layers)" % (len(sources), len(table)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
