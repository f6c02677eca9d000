"""``hbench validate SUITE``: every problem of a suite as ``file:line: key: message (fix)``,
or a one-line summary (exit 2 on problems)."""

import json
from typing import Any

import typer

from hbench import cli


def suite_summary(s: Any) -> dict[str, Any]:
    """What ``validate`` and ``suites`` say about a loaded suite."""
    core = sum(p.core for p in s.prompts)
    return {
        "name": s.name, "version": s.version, "layout": s.layout, "path": s.path,
        "prompts": len(s.prompts), "core": core,
        "conditional": sorted({p.conditional for p in s.prompts if p.conditional}),
        "vibe": sum(p.vibe for p in s.prompts), "sha256": s.sha256, "fixtures_sha256": s.fixtures_sha256,
    }


def validate_cmd(
    suite: str = typer.Argument(..., help="A suite name (see `hbench suites`) or a suite folder."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Check a suite: every problem as `file:line: key: message (fix)`, or a one-line summary. Exit 2 on problems."""
    from hbench.errors import SuiteError
    from hbench.suite import load_suite

    try:
        s = load_suite(suite, cli.registries())
    except SuiteError as exc:
        if as_json:
            typer.echo(json.dumps({"ok": False, "suite": suite, "problems": exc.problems}, indent=2))
        else:
            for line in exc.problems:
                typer.echo(line)
            n = len(exc.problems)
            cli.err(f"{suite}: {n} problem{'s' if n != 1 else ''}")
        raise typer.Exit(2) from None
    info = suite_summary(s)
    if as_json:
        typer.echo(json.dumps({"ok": True, **info}, indent=2))
        return
    cond = f", conditional: {', '.join(info['conditional'])}" if info["conditional"] else ""
    typer.echo(f"ok: {s.name} v{s.version}: {info['prompts']} prompts ({info['core']} core{cond}; "
               f"{info['vibe']} vibe), fixtures sha256 {s.fixtures_sha256[:16]}, suite sha256 {s.sha256[:16]}")


def register(app: typer.Typer) -> None:
    app.command("validate")(validate_cmd)
