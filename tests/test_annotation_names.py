"""Every name an annotation in core/ or plugins/ uses is imported or defined in its module.

With ``from __future__ import annotations`` an annotation is never evaluated at run time, so a
name a move left behind (``Callable`` after its import line went with the code) breaks only
``typing.get_type_hints``, type checkers and readers; this finds it without either."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bound(tree: ast.Module) -> set[str]:
    names = set(dir(builtins))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            if not isinstance(node, ast.ClassDef):
                names.update(a.arg for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs)
            names.update(getattr(t, "name", None) for t in getattr(node, "type_params", []) or ())
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def _annotations(tree: ast.Module):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            for arg in a.posonlyargs + a.args + a.kwonlyargs + [x for x in (a.vararg, a.kwarg) if x]:
                if arg.annotation is not None:
                    yield arg.annotation
            if node.returns is not None:
                yield node.returns
        elif isinstance(node, ast.AnnAssign):
            yield node.annotation


def test_every_annotation_name_is_bound_in_its_module():
    missing = []
    for folder in ("core", "plugins"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            bound = _bound(tree)
            for ann in _annotations(tree):
                for n in ast.walk(ann):
                    if isinstance(n, ast.Name) and n.id not in bound:
                        missing.append(f"{path.relative_to(ROOT)}:{n.lineno}: {n.id}")
    assert not missing, "annotation names never imported or defined:\n" + "\n".join(sorted(set(missing)))
