"""``hbench merge DIR... --out OUT`` (added by the ``hbench_register_commands`` hook)."""

from __future__ import annotations

import sys
from typing import Any, Optional

import typer


def register(app: Any) -> None:
    @app.command("merge")
    def merge_cmd(
        dirs: list[str] = typer.Argument(..., metavar="DIR...", help="The --out folders of `hbench run --shard I/N`."),
        out: str = typer.Option("results", "--out", help="Where the merged run goes (a new folder, or an earlier "
                                "hbench run's)."),
        report: Optional[str] = typer.Option(None, "--report", help="Reporters, e.g. json,md (default: all)."),
        prefer: str = typer.Option("memory", "--prefer", help="What orders lanes tied on quality: memory, speed "
                                   "or latency."),
        suite: Optional[str] = typer.Option(None, "--suite", help="The suite folder the shards ran (default: the "
                                            "path in shard.json)."),
    ) -> None:
        """Join the shards of one `hbench run --shard I/N` split into one run: scorecards, reports, history.

        Exit codes: 0 merged, 1 a lane failed in a shard, 2 bad input (shards of different runs),
        3 a lane incomplete (a shard missing or stopped early)."""
        from hbench.plugins.scaleout.merge import merge

        result = merge(dirs, out, prefer=prefer, report=report, suite=suite)
        for sc in result.scorecards:
            state = "" if sc.complete else f"  [not ranked: {sc.incomplete_reason or sc.failed}]"
            typer.echo(f"{sc.lane.get('name')}: core {sc.core_pass}/{sc.core_n}, pass_rate {sc.pass_rate:.2f}{state}")
        typer.echo(f"merged {len(dirs)} shard folder{'s' if len(dirs) != 1 else ''} into {result.out_dir} "
                   f"(journal {result.journal})")
        if result.verdict:
            sys.stderr.write(result.verdict + "\n")
        if result.exit_code:
            raise typer.Exit(result.exit_code)
