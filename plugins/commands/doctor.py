"""``hbench doctor LANE``: is LANE ready, which model, what context, do tool calls come back
structured; each finding with its fix (the findings: :mod:`hbench.plugins.commands.diagnosis`)."""

import json
from pathlib import Path
from typing import Optional

import typer

from hbench import cli
from hbench.plugins.commands.lane_args import KIND_HELP, pick_lane, status_printer


def doctor_cmd(
    lane: Optional[str] = typer.Argument(None, help="A lane from `hbench lanes`."),
    lane_url: Optional[str] = typer.Option(None, "--lane-url", help="Ad-hoc lane: http://HOST:PORT/v1"),
    model: Optional[str] = typer.Option(None, "--model", help="Model id for --lane-url."),
    kind: Optional[str] = typer.Option(None, "--kind", help=KIND_HELP),
    api_key_env: Optional[str] = typer.Option(None, "--api-key-env", help="Env var holding the key for --lane-url."),
    out: str = typer.Option("results", "--out", help="Where a managed lane's log goes (OUT/logs/)."),
    wait: float = typer.Option(10.0, "--wait", help="Seconds an unmanaged lane gets to answer ready."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Is LANE ready? Which model, what context? Do tool calls come back structured? Each finding with its fix."""
    from hbench.logging import scrub
    from hbench.plugins.commands.diagnosis import doctor, probe_tool

    spec, kind_obj = pick_lane(lane, lane_url, model, kind, api_key_env)
    findings = doctor(spec, kind_obj, out_dir=Path(out), headroom_gb=cli.load_config().run.memory_headroom_gb,
                      on_status=status_printer(), wait_s=wait, tool=probe_tool(cli.registries().tools))
    if as_json:
        typer.echo(scrub(json.dumps([{"check": f.check, "status": f.status, "detail": f.detail, "fix": f.fix}
                                     for f in findings], indent=2)))
    else:
        typer.echo(f"lane {spec.name} (kind {spec.kind})")
        for f in findings:
            typer.echo(scrub(f"  {f.status.upper():<4} {f.check:<10} {f.detail}"))
            if f.fix and f.status != "ok":
                typer.echo(scrub(f"       fix: {f.fix}"))
    if any(f.status == "fail" for f in findings):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor_cmd)
