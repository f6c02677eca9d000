"""The ``hbench`` command line (typer).

Machine output goes to stdout, progress and logs to stderr. Exit codes: 0 ran, 1 a lane
failed to run, 2 bad input (config, suite, plugin). Keep imports inside commands so
``hbench --help`` and ``hbench plugins`` stay fast.

Each command is thin: it parses options and calls the module that does the work.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Optional

import typer

from hbench.errors import HBenchError

app = typer.Typer(
    name="hbench",
    help="Which local model + serving stack should be your agent brain? Runs a graded, "
    "tool-using suite N times per lane and ranks the lanes.",
    pretty_exceptions_show_locals=False,  # locals can hold API keys
    no_args_is_help=True,
    add_completion=False,
)

_state: dict[str, Any] = {"config": None, "strict": False}


def _err(msg: str) -> None:
    from hbench.logging import scrub

    typer.echo(scrub(msg), err=True)


@app.callback()
def main_options(
    log_format: str = typer.Option("auto", "--log-format", help="auto | console | json (logs go to stderr)"),
    log_level: str = typer.Option("warning", "--log-level", help="debug | info | warning | error"),
    strict_plugins: bool = typer.Option(False, "--strict-plugins", help="A plugin that fails to load is fatal (exit 2)."),
    config: Optional[str] = typer.Option(None, "--config", help="Path to hbench.toml (default: ./hbench.toml)."),
) -> None:
    from hbench.logging import configure

    configure(log_format, log_level)
    _state["config"] = config
    _state["strict"] = strict_plugins
    from hbench.plugin_manager import get_plugins

    get_plugins(strict=strict_plugins)


def plugins_obj():  # noqa: ANN201
    from hbench.plugin_manager import get_plugins

    return get_plugins(strict=_state["strict"])


def registries():  # noqa: ANN201
    return plugins_obj().registries


def load_config():  # noqa: ANN201
    from hbench.config import load_config as _load

    return _load(_state["config"], lane_kinds=registries().lane_kinds.names())


def all_lanes() -> dict[str, Any]:
    """Plugin lanes, overridden by hbench.toml lanes of the same name."""
    reg = registries()
    lanes = {e.name: e.obj for e in reg.lanes.entries()}
    for e in reg.lanes.entries():
        if not lanes[e.name].source:
            lanes[e.name].source = f"plugin {e.plugin}"
    lanes.update(load_config().lanes)
    return lanes


# --------------------------------------------------------------------------- listing


@app.command("plugins")
def plugins_cmd(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """List installed plugins: name, version, hooks, status and error."""
    pl = plugins_obj()
    pl.registries  # noqa: B018 - run the registration hooks so hook failures show
    infos = pl.plugin_list()
    if as_json:
        typer.echo(json.dumps([
            {"name": i.name, "version": i.version, "builtin": i.builtin, "dist": i.dist,
             "status": i.status, "hooks": i.hooks, "error": i.error} for i in infos
        ], indent=2))
        return
    for i in infos:
        line = f"{i.name} {i.version} [{i.status}]"
        if i.hooks:
            line += f"  hooks: {', '.join(h.removeprefix('hbench_') for h in i.hooks)}"
        typer.echo(line)
        if i.error:
            typer.echo(f"    error: {i.error}")


def _list_registry(attr: str, as_json: bool, describe: Any = None) -> None:
    reg = getattr(registries(), attr)
    rows = [{"name": e.name, "plugin": e.plugin, **(describe(e.obj) if describe else {})} for e in reg.entries()]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        extra = "  ".join(f"{k}={v}" for k, v in r.items() if k not in ("name", "plugin") and v not in (None, ""))
        typer.echo(f"{r['name']:<28} ({r['plugin']})  {extra}".rstrip())


@app.command("lanes")
def lanes_cmd(as_json: bool = typer.Option(False, "--json")) -> None:
    """List candidate lanes (hbench.toml and plugins) and where each came from."""
    lanes = all_lanes()
    rows = [{"name": n, "kind": s.kind, "model": s.model, "base_url": s.base_url,
             "managed": bool(s.start) or s.kind == "embedded", "source": s.source} for n, s in sorted(lanes.items())]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("no lanes configured (add [lanes.NAME] to hbench.toml, or install a lane plugin)")
    for r in rows:
        typer.echo(f"{r['name']:<28} kind={r['kind']:<9} model={r['model'] or '?'}  from {r['source']}")


@app.command("checks")
def checks_cmd(as_json: bool = typer.Option(False, "--json")) -> None:
    """List check kinds and the plugin that registered each."""
    _list_registry("checks", as_json, lambda c: {"gate": getattr(c, "gate", None)})


@app.command("lane-kinds")
def lane_kinds_cmd(as_json: bool = typer.Option(False, "--json")) -> None:
    """List lane kinds (serving backends)."""
    _list_registry("lane_kinds", as_json, lambda k: {"description": getattr(k, "description", "")})


@app.command("reporters")
def reporters_cmd(as_json: bool = typer.Option(False, "--json")) -> None:
    """List reporters (result sinks)."""
    _list_registry("reporters", as_json, lambda r: {"description": getattr(r, "description", "")})


# --------------------------------------------------------------------------- entry point


def _add_plugin_commands() -> None:
    try:
        pl = plugins_obj()
    except HBenchError:
        return
    for _name, call in pl.call_each("hbench_register_commands", app=app):
        try:
            call()
        except Exception as exc:  # noqa: BLE001
            _err(f"plugin command registration failed: {exc}")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: maps HBenchError to its exit code and a clear message."""
    argv = sys.argv[1:] if argv is None else argv
    if "--strict-plugins" in argv:
        _state["strict"] = True
    try:
        _add_plugin_commands()
        app(args=argv, prog_name="hbench", standalone_mode=False)
    except HBenchError as exc:
        _err(f"error: {exc}")
        raise SystemExit(exc.exit_code) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        _err("aborted")
        raise SystemExit(130) from None
    except Exception as exc:  # click usage errors
        from typer import _click as click

        if isinstance(exc, click.ClickException):
            exc.show()
            raise SystemExit(2) from None
        raise
