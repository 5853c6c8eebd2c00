"""Numbers that say how the course reads: module and function sizes, code cells, definitions per exported
cell, words of prose. `python tools/course_stats.py` on the working tree; `--rev REV` on a commit.

The house style (../shared/STYLE.md and issue 25) asks for short cells (median at most 10 lines, none over
40), one definition per exported cell, and no module over 400 lines.
"""
import argparse
import ast
import json
import re
import statistics
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def files(rev: str | None, pattern: str) -> dict:
    "Path -> text of the files matching a glob, in the working tree or at a commit."
    if rev is None:
        return {str(p.relative_to(ROOT)): p.read_text() for p in sorted(ROOT.glob(pattern))}
    names = subprocess.run(["git", "ls-tree", "--name-only", rev, str(Path(pattern).parent) + "/"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return {n: subprocess.run(["git", "show", f"{rev}:{n}"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout
            for n in names if Path(n).match(pattern)}


def definitions(source: str) -> int:
    "Top-level functions, classes and constants a cell defines."
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return 0
    kinds = (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef, ast.Assign, ast.AnnAssign)
    return sum(isinstance(node, kinds) for node in tree.body)


def stats(rev: str | None) -> dict:
    modules = {k: v for k, v in files(rev, "mnist_nbdev/*.py").items() if not k.endswith(("_modidx.py", "__init__.py"))}
    functions = []
    for name, text in modules.items():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.append((node.end_lineno - node.lineno + 1, f"{Path(name).stem}.{node.name}"))
    cells, exported, words = [], [], 0
    for name, text in files(rev, "nbs/*.ipynb").items():
        for cell in json.loads(text)["cells"]:
            source = "".join(cell["source"])
            if cell["cell_type"] == "markdown":
                words += len(re.findall(r"\w+", source))
            elif source.strip():
                cells.append(len(source.strip().splitlines()))
                if re.match(r"#\|\s*exports?\b", source):
                    exported.append(definitions(source))
    biggest = max((len(t.splitlines()), n) for n, t in modules.items())
    return {
        "biggest module": f"{biggest[1]} ({biggest[0]} lines)",
        "modules over 400 lines": sum(len(t.splitlines()) > 400 for t in modules.values()),
        "longest function": "{1} ({0} lines)".format(*max(functions)),
        "code cells": len(cells),
        "longest code cell (lines)": max(cells),
        "median code cell (lines)": statistics.median(cells),
        "code cells over 40 lines": sum(n > 40 for n in cells),
        "definitions per exported cell": round(sum(exported) / len(exported), 2),
        "exported cells with 2+ definitions": f"{sum(d >= 2 for d in exported) / len(exported):.0%}",
        "words of notebook prose": words,
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rev", help="a commit to measure instead of the working tree")
    args = p.parse_args()
    for key, value in stats(args.rev).items():
        print(f"{key:36} {value}")
