#!/usr/bin/env python3
"""The file-level import graph of src/: which module file names which (`crate::a::b`,
`super::x`, `self::y` in `use` lines and paths in code), and the circles in it.

A circle is a set of files that import each other, so none can be read or changed alone. The
script prints every circle and exits 1 when there is one that KNOWN_CIRCLES does not list (the
ones still to break, kept here in one place); it exits 1 too when a listed one is gone, so the
list is emptied as circles are broken.

Usage: .ci/import-graph.py [--dot]   (--dot prints the graph for graphviz)
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")

# Circles not yet broken, each as the sorted module names in it.
KNOWN_CIRCLES = []


def module_of(path):
    rel = os.path.relpath(path, ROOT)[:-3]  # strip .rs
    parts = rel.split(os.sep)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return "::".join(parts)


def files():
    for d, _, names in os.walk(ROOT):
        if os.path.relpath(d, ROOT).startswith("bin"):
            continue
        for n in names:
            if n.endswith(".rs") and not (d == ROOT and n == "main.rs"):
                yield os.path.join(d, n)


def strip_tests(text):
    # `#[cfg(test)] mod tests { ... }` sits at the end of a file by house rule; comments (doc
    # links included) import nothing.
    i = text.find("#[cfg(test)]\nmod tests")
    text = text if i < 0 else text[:i]
    return "\n".join(l for l in text.split("\n") if not l.lstrip().startswith("//"))


def main():
    modules = {module_of(f): f for f in files()}
    names = set(modules)
    edges = {m: set() for m in names}
    path_re = re.compile(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
    for m, f in modules.items():
        with open(f, encoding="utf-8") as fh:
            text = strip_tests(fh.read())
        base = m.split("::") if m else []
        # Expand `use a::{b, c::{d}}` groups into paths first.
        for kind, rest in path_re.findall(text):
            segs = rest.strip(":").split("::")
            if kind == "crate":
                start = []
            elif kind == "self":
                start = base
            else:  # super: the parent module, for a mod.rs as for a plain file
                start = base[:-1]
            target = None
            for k in range(len(segs), 0, -1):
                cand = "::".join(start + segs[:k])
                if cand in names:
                    target = cand
                    break
            if target is not None and target != m and not m.startswith(target + "::") and target != "":
                edges[m].add(target)
        # Group imports: `use crate::x::{a, b}` names x::a and x::b too.
        for kind, prefix, group in re.findall(r"use (crate|super)((?:::[A-Za-z_]\w*)*)::\{([^;]*)\};", text):
            start = [] if kind == "crate" else base[:-1]
            pre = prefix.strip(":").split("::") if prefix.strip(":") else []
            for item in re.split(r"[,{}\s]+", group):
                item = item.split("::")[0]
                if not item or item in ("self",):
                    continue
                cand = "::".join(start + pre + [item])
                if cand in names and cand != m and not m.startswith(cand + "::"):
                    edges[m].add(cand)
    if "--dot" in sys.argv:
        print("digraph imports {")
        for a in sorted(edges):
            for b in sorted(edges[a]):
                print(f'  "{a}" -> "{b}";')
        print("}")
        return 0
    circles = strongly_connected(edges)
    found = sorted(sorted(c) for c in circles if len(c) > 1)
    for c in found:
        print("circle:", " <-> ".join(c), "(known, to break)" if c in KNOWN_CIRCLES else "(NEW)")
    new = [c for c in found if c not in KNOWN_CIRCLES]
    gone = [c for c in KNOWN_CIRCLES if c not in found]
    for c in gone:
        print("broken now, remove from KNOWN_CIRCLES:", " <-> ".join(c))
    arrows = sum(len(v) for v in edges.values())
    print(f"import-graph: {len(names)} modules, {arrows} arrows, {len(found)} circle(s), {len(new)} new")
    return 1 if new or gone else 0


def strongly_connected(edges):
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
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
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


if __name__ == "__main__":
    sys.exit(main())
