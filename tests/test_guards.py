"""Guards on the shape of the code (issue 16): files of one job (at most 600 lines), a core
that names no built-in plugin, and no import cycle among hbench's modules.

Each guard lists what is still pending, by name and with why; the test fails on anything
new, and on a listed entry that is fixed (so the list only shrinks: delete the entry)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 600
#: source folder -> the package it installs as (pyproject.toml, package-dir)
PACKAGES = {"core": "hbench", "plugins": "hbench.plugins", "suites": "hbench.suites"}

#: files over MAX_LINES still to split by job (issue 16), with the split they need
PENDING_SPLITS: dict[str, str] = {
}

#: (file, string) pairs in core/ equal to a built-in plugin's registered name, with why
#: they are there; a new one fails the test
KNOWN_NAME_HITS: dict[tuple[str, str], str] = {
    # the same word used for something else (not the plugin); nothing here is pending
    ("core/cli_help.py", "host"): "the --host option's value name",
    ("core/logging.py", "json"): "the log format",
    ("core/matching.py", "number"): "a match kind of the matching language",
    ("core/matching.py", "regex"): "a match kind of the matching language",
    ("core/suite.py", "number"): "a match kind of the matching language",
    ("core/placeholders.py", "regex"): "a match kind of the matching language",
    ("core/report.py", "host"): "the provenance key 'host'",
    ("core/scorecard_build.py", "host"): "the provenance key 'host'",
    ("core/scorecard_build.py", "builtin"): "the provenance key 'builtin' (a plugin is built in), not the agent",
    ("core/cli.py", "builtin"): "the `hbench plugins --json` key 'builtin' (a plugin is built in), not the agent",
}

#: import cycles through function-level imports still to break (module-top imports have none)
KNOWN_CYCLES: list[set[str]] = [
]


def _sources(folder: str) -> list[Path]:
    return sorted(p for p in (ROOT / folder).rglob("*.py")
                  if "__pycache__" not in p.parts and "fixtures" not in p.parts)


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_no_file_over_600_lines() -> None:
    over = {str(p.relative_to(ROOT)): _lines(p) for f in ("core", "plugins") for p in _sources(f)
            if _lines(p) > MAX_LINES}
    new = {f: n for f, n in over.items() if f not in PENDING_SPLITS}
    assert not new, f"over {MAX_LINES} lines: {new}; split each by job (one file, one job)"
    done = [f for f in PENDING_SPLITS if f not in over]
    assert not done, f"{done} now hold at most {MAX_LINES} lines: delete them from PENDING_SPLITS"


def _builtin_names() -> dict[str, str]:
    from hbench.plugin_manager import REGISTRATION_HOOKS, get_plugins

    pl = get_plugins()
    names: dict[str, str] = {}
    for attr in REGISTRATION_HOOKS.values():
        for e in getattr(pl.registries, attr).entries():
            if pl.infos[e.plugin].builtin:
                names[e.name] = f"{attr[:-1]} of {e.plugin}"
    return names


def test_core_names_no_builtin_plugin() -> None:
    names = _builtin_names()
    assert {"embedded", "vllm", "json", "honesty", "builtin", "hermes-brain"} <= set(names)
    hits: dict[tuple[str, str], int] = {}
    for p in _sources("core"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                key = (str(p.relative_to(ROOT)), node.value)
                hits[key] = hits.get(key, 0) + 1
    new = {f"{f}: {n!r} ({names[n]})": c for (f, n), c in hits.items() if (f, n) not in KNOWN_NAME_HITS}
    assert not new, f"core names built-in plugins: {new}; ask the plugin (an attribute, a hook), not its name"
    gone = [k for k in KNOWN_NAME_HITS if k not in hits]
    assert not gone, f"{gone} no longer in core: delete them from KNOWN_NAME_HITS"


def _module_names() -> dict[str, Path]:
    mods = {}
    for folder, pkg in PACKAGES.items():
        for p in _sources(folder):
            parts = list(p.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join([pkg, *parts])] = p
    return mods


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _imports(tree: ast.Module, top_only: bool) -> list[ast.AST]:
    """Import statements: at module top (not under ``if TYPE_CHECKING``), or anywhere."""
    if top_only:
        return [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    out: list[ast.AST] = []
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                todo.extend(child.orelse)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                out.append(child)
            todo.append(child)
    return out


def import_graph(top_only: bool) -> dict[str, set[str]]:
    mods = _module_names()

    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text()), top_only):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = pkg
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}" if base else anchor
                targets = [base, *(f"{base}.{a.name}" for a in node.names)]
            for t in targets:
                o = owner(t) if t.startswith("hbench") else None
                if o and o != mod and not mod.startswith(o + "."):  # a package's own parent is no edge
                    graph[mod].add(o)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[set[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = set()
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.add(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(comp)
    return out


def test_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_at_module_top() -> None:
    found = cycles(import_graph(top_only=True))
    assert not found, f"import cycles among hbench modules (module-top imports): {found}"


@pytest.mark.parametrize("top_only", [False])
def test_function_level_import_cycles_do_not_grow(top_only: bool) -> None:
    found = cycles(import_graph(top_only))
    new = [c for c in found if not any(c <= k for k in KNOWN_CYCLES)]
    assert not new, f"import cycles through function-level imports: {new}"
