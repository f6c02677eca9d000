"""``hbench report DIR_OR_FILES...``: rebuild summary.md and report.html from scorecards
alone (``hbench.report.rebuild_reports``), e.g. of lanes run on several machines."""

from typing import Optional

import typer

from hbench import cli


def report_cmd(
    inputs: list[str] = typer.Argument(..., metavar="DIR_OR_FILES...",
                                       help="Scorecards (<lane>.json) or results folders holding them."),
    out: Optional[str] = typer.Option(None, "--out", help="Where to write (default: the first input's folder)."),
    allow_mixed: bool = typer.Option(False, "--allow-mixed",
                                     help="Compare scorecards from different suite hashes (marked in the table)."),
    report: Optional[str] = typer.Option(None, "--report", help="Reporters to run, comma-separated (default: "
                                         "those marked for hbench report, summary.md and report.html)."),
    prefer: str = typer.Option("memory", "--prefer", help="What orders lanes tied on quality: memory (lower "
                               "peak memory in use), speed (higher tok/s) or latency (lower p50)."),
) -> None:
    """Rebuild summary.md and report.html from scorecards alone (e.g. lanes run on several machines)."""
    from hbench.report import rebuild_reports
    from hbench.scoring import PREFERENCES

    if prefer not in PREFERENCES:
        cli.err(f"error: --prefer {prefer}: choose one of {', '.join(PREFERENCES)} (what orders lanes tied on quality)")
        raise typer.Exit(2)
    names = [n.strip() for n in report.split(",") if n.strip()] if report is not None else None
    for path in rebuild_reports(inputs, out, allow_mixed=allow_mixed, reporters=names, registries=cli.registries(),
                                prefer=prefer):
        typer.echo(str(path))


def register(app: typer.Typer) -> None:
    app.command("report")(report_cmd)
