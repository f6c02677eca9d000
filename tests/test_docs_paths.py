"""The files docs/ARCHITECTURE.md and README.md name exist, and each ``file: name`` the
architecture page points at is defined in that file (files move; the page must follow)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATH = re.compile(r"`((?:core|plugins|suites|docs|tests|examples|benchmarks|\.ci)/[^`\s:]*)(?::\s*([\w.]+))?`")
BARE = re.compile(r"`([\w]+\.py)(?::\s*([\w.]+))?`")


def _defined(path: Path, dotted: str) -> bool:
    """``name`` or ``Class.method`` defined at the top of ``path`` (or imported there)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    scope: list[ast.stmt] = tree.body
    for part in dotted.split("."):
        found = None
        for node in scope:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == part:
                found = node
            elif isinstance(node, (ast.Import, ast.ImportFrom)) and any(
                    (a.asname or a.name) == part for a in node.names):
                return True
            elif isinstance(node, ast.Assign) and any(getattr(t, "id", None) == part for t in node.targets):
                return True
        if found is None:
            return False
        scope = getattr(found, "body", [])
    return True


def _problems(doc: str) -> list[str]:
    text = (ROOT / doc).read_text(encoding="utf-8")
    out = []
    for m in PATH.finditer(text):
        rel, name = m.group(1).rstrip("/"), m.group(2)
        p = ROOT / rel
        if not p.exists():
            out.append(f"{doc}: `{m.group(0)}`: no file {rel}")
        elif name and p.suffix == ".py" and not _defined(p, name):
            out.append(f"{doc}: `{rel}: {name}`: {rel} defines no {name}")
    py = {p.name for d in ("core", "plugins", "suites") for p in (ROOT / d).rglob("*.py")}
    for m in BARE.finditer(text):
        if m.group(1) not in py:
            out.append(f"{doc}: `{m.group(1)}`: no such file in core/, plugins/ or suites/")
    return out


def test_architecture_names_files_and_functions_that_exist():
    assert not _problems("docs/ARCHITECTURE.md")


def test_readme_names_files_that_exist():
    assert not _problems("README.md")
