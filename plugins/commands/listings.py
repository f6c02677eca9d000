"""``hbench lanes | checks | lane-kinds | reporters | suites | agents``: what the plugins
registered, and where each came from (``--json`` for machines)."""

import json
from typing import Any, Callable

import typer

from hbench import cli

JSON_HELP = "Print JSON instead of a table."


def _print_rows(rows: list[dict[str, Any]], as_json: bool, line: Callable[[dict[str, Any]], str],
                empty: str | None = None) -> None:
    """A listing's rows: as JSON, else one ``line`` each (``empty`` when there are none)."""
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows and empty:
        typer.echo(empty)
    for r in rows:
        typer.echo(line(r))


def _registry_line(r: dict[str, Any]) -> str:
    extra = "  ".join(f"{k}={v}" for k, v in r.items()
                      if k not in ("name", "plugin", "default") and v not in (None, ""))
    mark = "  (default)" if r["default"] else ""
    return f"{r['name']:<28} ({r['plugin']}){mark}  {extra}".rstrip()


def _list_registry(attr: str, as_json: bool, describe: Callable[[Any], dict[str, Any]] | None = None) -> None:
    reg = getattr(cli.registries(), attr)
    rows = [{"name": e.name, "plugin": e.plugin, "default": e.name == reg.default(),
             **(describe(e.obj) if describe else {})} for e in reg.entries()]
    _print_rows(rows, as_json, _registry_line)


def lanes_cmd(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """List candidate lanes (hbench.toml and plugins) and where each came from."""
    from hbench.lanes import is_managed
    from hbench.logging import scrub

    lanes = cli.all_lanes()
    kinds = cli.registries().lane_kinds

    def managed(s: Any) -> bool:
        return is_managed(s, kinds.get(s.kind)) if s.kind in kinds else bool(s.start)

    rows = [{"name": n, "kind": s.kind, "model": s.model, "base_url": scrub(s.base_url) if s.base_url else None,
             "managed": managed(s), "source": s.source} for n, s in sorted(lanes.items())]
    _print_rows(rows, as_json,
                lambda r: f"{r['name']:<28} kind={r['kind'] or '?':<9} model={r['model'] or '?'}  from {r['source']}",
                "no lanes configured (add [lanes.NAME] to hbench.toml, or install a lane plugin)")


def checks_cmd(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """List check kinds and the plugin that registered each."""
    _list_registry("checks", as_json, lambda c: {"gate": getattr(c, "gate", None)})


def lane_kinds_cmd(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """List lane kinds (serving backends)."""
    _list_registry("lane_kinds", as_json, lambda k: {"description": getattr(k, "description", "")})


def reporters_cmd(as_json: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """List reporters (result sinks)."""
    _list_registry("reporters", as_json, lambda r: {"description": getattr(r, "description", "")})


def suites_cmd(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """List bundled and plugin suites: name, version, prompts, where from."""
    from hbench.errors import SuiteError
    from hbench.plugins.commands.validate import suite_summary
    from hbench.suite import load_suite

    reg = cli.registries()
    rows = []
    for e in reg.suites.entries():
        row: dict[str, Any] = {"name": e.name, "plugin": e.plugin, "path": str(e.obj)}
        try:
            info = suite_summary(load_suite(str(e.obj), reg))
            row.update({k: info[k] for k in ("version", "prompts", "core", "conditional", "fixtures_sha256")})
            row["problems"] = []
        except SuiteError as exc:
            row["problems"] = exc.problems
        rows.append(row)
    _print_rows(rows, as_json, _suite_line,
                "no suites installed (pass a suite folder to --suite, or install a suite plugin)")


def _suite_line(r: dict[str, Any]) -> str:
    if r["problems"]:
        return f"{r['name']:<20} INVALID ({len(r['problems'])} problems: hbench validate {r['path']})  ({r['plugin']})"
    return (f"{r['name']:<20} v{r['version']:<6} {r['prompts']} prompts ({r['core']} core)  "
            f"fixtures {r['fixtures_sha256'][:12]}  ({r['plugin']})  {r['path']}")


def agents_cmd(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """List agent drivers and whether each is usable here (and how to fix it if not)."""
    rows = []
    for e in cli.registries().agents.entries():
        try:
            ok, why = e.obj.usable()
            info = e.obj.describe()
        except Exception as exc:  # noqa: BLE001 - one broken driver must not hide the rest
            ok, why, info = False, f"usable() raised {type(exc).__name__}: {exc}", {}
        rows.append({"name": e.name, "plugin": e.plugin, "usable": bool(ok), "detail": why,
                     "version": info.get("version"),
                     "capabilities": sorted(getattr(e.obj, "capabilities", ()) or ())})
    _print_rows(rows, as_json, lambda r: f"{r['name']:<12} {'usable' if r['usable'] else 'NOT USABLE':<10} "
                                         f"{r['detail']}  ({r['plugin']})", "no agent drivers installed")


def register(app: typer.Typer) -> None:
    for name, fn in (("lanes", lanes_cmd), ("checks", checks_cmd), ("lane-kinds", lane_kinds_cmd),
                     ("reporters", reporters_cmd), ("suites", suites_cmd), ("agents", agents_cmd)):
        app.command(name)(fn)
