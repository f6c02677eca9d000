"""Suites: load and validate a suite folder, substitute placeholders, render fixtures.

Two layouts (DESIGN.md, section Suites)::

    hbench                       hermes-brain-bench v0.1 (published dataset)
    suite.toml                   data/train.jsonl      (same prompt fields)
    prompts.jsonl                ground_truth.json
    ground_truth.json            scratch/              (pre-seeded, copied verbatim)
    fixtures/   (templates)

``{{name}}`` placeholders resolve from ``ground_truth.json`` in prompt text, in check
fields (escaped in a kind's ``regex_fields``) and in fixture templates. Validation reports
every problem, not the first, each as ``file:line: key: message (fix)``.

This module loads a suite (:func:`load_suite`) and is its public API; the parts it uses:

* :mod:`hbench.suite_toml`: reading suite.toml, ground_truth.json and JSONL rows, with
  ``file:line`` problems;
* :mod:`hbench.suite_checks`: building each prompt's check and scenario fields;
* :mod:`hbench.placeholders`: ``{{name}}`` substitution;
* :mod:`hbench.fixtures`: rendering and hashing the fixture tree (stable across machines);
* :mod:`hbench.suite_tools`, :mod:`hbench.suite_mcp`: a suite's own tools and MCP servers.
"""

from __future__ import annotations

import difflib
import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from hbench.errors import SuiteError
from hbench.fixtures import (
    confined,
    fixture_files,
    fixtures_digest,
    render_fixtures,
    render_tree,
    rendered_fixtures,
    tree_sha256,
)
from hbench.limits import MAX_SUITE_FILE_BYTES, LimitError, read_limited
from hbench.models import Suite
from hbench.placeholders import substitute, substitute_matchers, substitute_tree, unknown_msg
from hbench.plugin_manager import get_registries
from hbench.suite_checks import build_prompts, check_tool_references
from hbench.suite_toml import (
    DEFAULT_SYSTEM_PROMPT,
    LAYOUT_HBENCH,
    LAYOUT_V01,
    Problems,
    SuiteFile,
    load_ground_truth,
    load_suite_toml,
    norm_bytes,
    read_rows,
)
from hbench.suite_tools import parse_tool_rows

__all__ = [
    "LAYOUT_HBENCH",
    "LAYOUT_V01",
    "DEFAULT_SYSTEM_PROMPT",
    "fixture_files",
    "load_suite",
    "render_fixtures",
    "rendered_fixtures",
    "resolve_suite",
    "substitute",
    "tree_sha256",
]

#: v0.1 check kinds that are spelled differently here
V01_KIND_ALIASES = {"numeric": "number"}


# --------------------------------------------------------------------------- resolve


def _registries(registries: Any) -> Any:
    if registries is None:
        return get_registries()
    return registries


def resolve_suite(name_or_path: str | os.PathLike[str], registries: Any = None) -> Path:
    """A suite name registered by a plugin (``hermes-brain``), or a folder path."""
    raw = os.fspath(name_or_path)
    p = Path(raw).expanduser()
    if p.is_dir():
        return p.resolve()
    reg = _registries(registries)
    if raw in reg.suites:
        return Path(reg.suites.get(raw)).resolve()
    installed = ", ".join(reg.suites.names()) or "none"
    hint = _did_you_mean_plain(raw, reg.suites.names())
    raise SuiteError(
        f"no suite {raw!r}: not an installed suite (installed: {installed}) and no folder at {p}"
        f" ({hint}pass an installed name or the path to a folder holding suite.toml)"
    )


def _did_you_mean_plain(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


# --------------------------------------------------------------------------- load


def _load_tools(path: Path, values: Mapping[str, str], rendered: Mapping[str, bytes], builtin: list[str],
                problems: Problems) -> tuple[list[Any], bytes]:
    """``tools.jsonl``: the suite tools, and its bytes with placeholders resolved (part of
    the fixture sha256: what the model can be shown)."""
    fname = "tools.jsonl"
    rows = read_rows(path, fname, problems, what="tool")

    def sub(value: Any, where: str, key: str) -> Any:
        unknown: list[str] = []
        out = substitute_matchers(value, values, unknown) if key.endswith(".when") else \
            substitute_tree(value, values, False, unknown)
        if unknown:
            problems.add(where, key, unknown_msg(unknown, values))
        return out

    specs = parse_tool_rows(rows, fname, problems.add, substitute=sub, fixtures=rendered, reserved=builtin)
    resolved = substitute(norm_bytes(path.read_bytes()).decode("utf-8", "replace"), values).encode("utf-8")
    return specs, resolved


def _fail(root: Path, problems: Problems) -> SuiteError:
    n = len(problems.lines)
    head = f"suite at {root} has {n} problem{'s' if n != 1 else ''}:"
    return SuiteError(head + "\n" + "\n".join(f"  {p}" for p in problems.lines), list(problems.lines))


def _detect_layout(root: Path) -> str | None:
    if (root / "suite.toml").is_file():
        return LAYOUT_HBENCH
    if (root / "data" / "train.jsonl").is_file():
        return LAYOUT_V01
    return None


def load_suite(name_or_path: str | os.PathLike[str], registries: Any = None) -> Suite:
    """Load, substitute and validate a suite; raise :class:`SuiteError` listing every problem.

    ``registries`` is :class:`hbench.plugin_manager.Registries` (default: the process's),
    used for suite names and check kinds.
    """
    reg = _registries(registries)
    root = resolve_suite(name_or_path, reg)
    layout = _detect_layout(root)
    problems = Problems()
    if layout is None:
        raise SuiteError(
            f"{root}: not a suite folder: no suite.toml (hbench layout: suite.toml, prompts.jsonl, "
            "ground_truth.json, fixtures/) and no data/train.jsonl (hermes-brain-bench v0.1 layout)",
        )
    hashed: dict[str, bytes] = {}
    gt_path = confined(root, "ground_truth.json", problems)
    values, gt_bytes = load_ground_truth(gt_path, problems) if gt_path is not None else ({}, b"")
    if gt_bytes:
        hashed["ground_truth.json"] = norm_bytes(gt_bytes)

    if layout == LAYOUT_HBENCH:
        toml_path = confined(root, "suite.toml", problems)
        meta, toml_bytes = load_suite_toml(toml_path, problems) if toml_path is not None else (None, b"")
        hashed["suite.toml"] = norm_bytes(toml_bytes)
        fname = "prompts.jsonl"
        prompts_path = root / fname
        kind_aliases: Mapping[str, str] = {}
        fixtures = root / "fixtures"
        template = True
    else:
        meta = SuiteFile(
            name=root.name, version="0.1", system_prompt=DEFAULT_SYSTEM_PROMPT,
            description="hermes-brain-bench v0.1 (published layout)",
        )
        fname = "data/train.jsonl"
        prompts_path = root / fname
        kind_aliases = V01_KIND_ALIASES
        fixtures = root / "scratch"
        template = False  # pre-seeded: copied verbatim
    rows: list[tuple[int, dict[str, Any]]] = []
    if not prompts_path.is_file():
        problems.add(fname, None, "missing (one JSON object per line: id, prompt, check, ...)")
    elif confined(root, fname, problems) is not None:
        try:
            hashed[fname] = norm_bytes(read_limited(prompts_path, MAX_SUITE_FILE_BYTES))
        except LimitError:
            pass  # read_rows says so
        rows = read_rows(prompts_path, fname, problems)
    prompts = build_prompts(rows, fname, values, reg.checks, problems, kind_aliases)

    fixtures_dir: Path | None = None
    if fixtures.is_symlink() or fixtures.exists():
        fixtures_dir = confined(root, fixtures.name, problems, root_folder=True)
        if fixtures_dir is not None and not fixtures_dir.is_dir():
            problems.add(fixtures.name, None, f"is not a folder ({fixtures.name}/ holds the files each attempt starts with)")
            fixtures_dir = None
    rendered: dict[str, bytes] = {}
    if fixtures_dir is not None:
        rendered = render_tree(fixtures_dir, values, template, fixtures.name, problems)
    # suite format 2: the suite's own tools, and every tool a prompt names
    builtin = [n for n in reg.tools.names() if not getattr(reg.tools.get(n), "decoy", False)]
    n_decoys = len(reg.tools.names()) - len(builtin)
    tool_specs: list[Any] = []
    tools_resolved: bytes | None = None
    tools_path = root / "tools.jsonl"
    if layout == LAYOUT_HBENCH and (tools_path.is_file() or tools_path.is_symlink()) \
            and confined(root, "tools.jsonl", problems) is not None:
        hashed["tools.jsonl"] = norm_bytes(tools_path.read_bytes())
        tool_specs, tools_resolved = _load_tools(tools_path, values, rendered, builtin, problems)
    check_tool_references(prompts, fname, builtin, [t.name for t in tool_specs], n_decoys, problems)
    if meta is not None:
        d = meta.defaults
        for key, value, zero_ok in (("runs", d.runs, False), ("timeout_s", d.timeout_s, False),
                                    ("max_turns", d.max_turns, False), ("max_tokens", d.max_tokens, False),
                                    ("temperature", d.temperature, True)):
            if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
                need = "0 or more" if zero_ok else "more than 0"
                problems.add("suite.toml", f"defaults.{key}", f"{value!r} is not usable: must be a finite number, {need}")
    if problems.lines or meta is None:
        raise _fail(root, problems)
    return Suite(
        name=meta.name,
        version=meta.version,
        description=meta.description,
        system_prompt=meta.system_prompt,
        defaults=meta.defaults,
        prompts=tuple(prompts),
        ground_truth=dict(values),
        path=str(root),
        fixtures_dir=str(fixtures_dir) if fixtures_dir is not None else None,
        sha256=tree_sha256(hashed),
        fixtures_sha256=fixtures_digest(rendered, tools_resolved),
        layout=layout,
        tools=tuple(tool_specs),
        mcp_servers=dict(meta.mcp_servers),
    )
