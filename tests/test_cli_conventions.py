"""CLI conventions (issue 16): ``--version``, ``-h``, a readable value name and help text
on every option of every command, plugin commands included."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from hbench import __version__, cli
from hbench.cli_help import BY_NAME, metavar_for

#: how typer/click name a value by its type when nothing better is given
TYPE_METAVAR = re.compile(r"<\w+>|\b(TEXT|INTEGER|FLOAT|BOOLEAN)\b")


def _tree():
    from typer.core import TyperOption

    root = cli.build_command()
    root.add_plugin_commands()  # what listing them (hbench --help) does

    def walk(cmd, path):
        yield path, cmd
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            yield from walk(sub, [*path, name])

    ctx_cls = type(root).context_class
    for path, cmd in walk(root, ["hbench"]):
        ctx = ctx_cls(cmd, info_name=path[-1])
        for p in cmd.params:
            yield " ".join(path), p, isinstance(p, TyperOption), ctx


def test_every_option_has_help_and_a_readable_value_name():
    bad = []
    seen = 0
    for where, p, is_option, ctx in _tree():
        if not is_option:
            continue
        seen += 1
        if not (p.help or "").strip():
            bad.append(f"{where} {p.opts[0]}: no help text")
        if not p.is_flag:
            mv = p.make_metavar(ctx)
            if TYPE_METAVAR.search(mv):
                bad.append(f"{where} {p.opts[0]}: metavar {mv!r}")
    assert seen > 50  # the whole tree was walked, plugin commands too
    assert not bad, "\n".join(bad)


def test_run_help_names_values_by_what_they_are():
    r = subprocess.run([sys.executable, "-m", "hbench", "run", "-h"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for shown in ("--lanes LANE,...", "--runs N", "--timeout SECONDS", "--out DIR", "--lane-url URL"):
        assert shown in r.stdout, shown
    assert "<str>" not in r.stdout and "<int>" not in r.stdout and "\\[" not in r.stdout


@pytest.mark.parametrize("argv", [["--version"], ["-h"], ["lanes", "-h"]])
def test_version_and_short_help(argv):
    r = subprocess.run([sys.executable, "-m", "hbench", *argv], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    if argv == ["--version"]:
        assert r.stdout.strip() == f"hbench {__version__}"
    else:
        assert r.stdout.startswith("Usage: hbench")


class _Opt:
    def __init__(self, opts, type_name):
        self.opts = opts
        self.type = type("T", (), {"name": type_name})()


@pytest.mark.parametrize(("opts", "type_name", "want"), [
    (["--runs"], "integer", "N"),
    (["--timeout"], "float", "SECONDS"),
    (["--brand-new-count"], "integer", "N"),
    (["--ratio"], "float", "NUMBER"),
    (["--flavour"], "text", "FLAVOUR"),
    (["-o", "--out"], "text", "DIR"),
])
def test_metavar_for(opts, type_name, want):
    assert metavar_for(_Opt(opts, type_name)) == want
    assert all(not TYPE_METAVAR.search(v) for v in BY_NAME.values())
