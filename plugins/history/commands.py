"""``hbench history [import|show|prune]`` and ``hbench compare``. Added to the CLI by the
``hbench_register_commands`` hook; SQLAlchemy is imported only when a command runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

DB_HELP = "Run database URL (default: HBENCH_DB, else SQLite in the user data dir)."


def _engine(db: str | None) -> Any:
    from hbench.plugins.history.db import engine_for

    return engine_for(db)


def _reading_engine(db: str | None) -> Any:
    """For a read: None when there is no database yet (nothing is created just to read)."""
    from hbench.plugins.history.where import exists

    if not exists(db):
        return None
    from hbench.plugins.history.db import engine_for

    return engine_for(db)


def _fmt_rate(x: Any) -> str:
    return f"{x:.2f}" if isinstance(x, (int, float)) else "n/a"


def register(app: typer.Typer) -> None:
    history_app = typer.Typer(name="history", help="The run database: every finished lane of every run.",
                              no_args_is_help=False, add_completion=False, rich_markup_mode=None)

    @history_app.callback(invoke_without_command=True)
    def history_cmd(
        ctx: typer.Context,
        lane: Optional[str] = typer.Option(None, "--lane", help="Only this lane."),
        model: Optional[str] = typer.Option(None, "--model", help="Only this model (served id or configured)."),
        suite: Optional[str] = typer.Option(None, "--suite", help="Only this suite (name or sha256 prefix)."),
        since: Optional[str] = typer.Option(None, "--since", help="Only runs since: 2026-11-01, 7d, 12h."),
        limit: int = typer.Option(50, "--limit", min=1, help="At most this many runs (newest first)."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """A table of runs, newest first (one line per lane in a run). Subcommands: import, show, prune."""
        if ctx.invoked_subcommand is not None:
            ctx.obj = {"db": db}
            return
        from hbench.plugins.history.query import history, parse_since

        from hbench.plugins.history.where import exists

        ts = parse_since(since) if since else None
        rows = history(db, lane=lane, model=model, suite=suite, since=ts, limit=limit) if exists(db) else []
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        if not rows:
            from hbench.plugins.history.where import describe, resolve_url

            typer.echo(f"no runs in the run database {describe(resolve_url(db))}"
                       + (" matching the filters" if any((lane, model, suite, since)) else ""))
            return
        head = f"{'run':<14} {'started':<25} {'lane':<24} {'model':<24} {'suite':<18} {'core':>6} {'pass_rate':>9}  ci95"
        typer.echo(head)
        for run in rows:
            for ln in run["lanes"]:
                ci = ln["pass_rate_ci95"]
                cis = f"[{ci[0]:.2f}, {ci[1]:.2f}]" if None not in ci else ""
                flag = "" if ln["rankable"] else "  unrankable"
                flag += "  FAILED" if ln["failed"] else ("  incomplete" if ln["complete"] is False else "")
                model_s = str(ln["served_model"] or ln["model"] or "?")
                suite_s = f"{ln['suite']['name']} {ln['suite']['version']}"
                typer.echo(f"{run['run_id'][:12]:<14} {run['started_at']:<25} {ln['lane'][:24]:<24} "
                           f"{model_s[:24]:<24} {suite_s[:18]:<18} {ln['core_pass']:>3}/{ln['core_n']:<2} "
                           f"{_fmt_rate(ln['pass_rate']):>9}  {cis}{flag}")

    def _db(ctx: typer.Context, db: str | None) -> str | None:
        return db or (ctx.obj or {}).get("db")

    @history_app.command("import")
    def import_cmd(
        ctx: typer.Context,
        folders: list[str] = typer.Argument(..., metavar="DIR...", help="Results folders (the --out of hbench run)."),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """Rebuild the run database from results folders (scorecards and journals); importing twice adds nothing."""
        from hbench.plugins.history.importer import import_folders

        for imp in import_folders(_engine(_db(ctx, db)), folders):
            if imp.lanes:
                rebuilt = f"; scored again from the journal: {', '.join(imp.rebuilt)}" if imp.rebuilt else ""
                typer.echo(f"{imp.folder}: run {imp.run_id}: {len(imp.lanes)} lane{'s' if len(imp.lanes) != 1 else ''} "
                           f"({', '.join(imp.lanes)}){rebuilt}")
            for note in imp.notes:
                typer.echo(f"{imp.folder}: {note}")

    @history_app.command("show")
    def show_cmd(
        ctx: typer.Context,
        run: str = typer.Argument(..., help="A run id (or a unique prefix of one, 4+ characters)."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """One run: its lanes, their figures and per-prompt results."""
        from hbench.errors import BadInput
        from hbench.plugins.history.query import show

        engine = _reading_engine(_db(ctx, db))
        if engine is None:
            raise BadInput("no run database yet: run hbench, or `hbench history import DIR`")
        data = show(engine, run)
        if as_json:
            typer.echo(json.dumps(data, indent=2))
            return
        typer.echo(f"run {data['run_id']}  {data['started_at']} -> {data['finished_at']}  host {data['host']}  "
                   f"hbench {data['hbench_version']}")
        for ln in data["lanes"]:
            typer.echo(f"\n{ln['lane']} (kind {ln['kind']}, model {ln['served_model'] or ln['model'] or '?'}, "
                       f"suite {ln['suite']['name']} {ln['suite']['version']})")
            typer.echo(f"  core {ln['core_pass']}/{ln['core_n']}, pass_rate {_fmt_rate(ln['pass_rate'])} "
                       f"{ln['pass_rate_ci95']}, consistency {_fmt_rate(ln['consistency'])}, "
                       f"runaways {_fmt_rate(ln['runaway_rate'])}, attempts {ln['attempts']['n']} "
                       f"({ln['attempts']['errored']} errored), tokens {ln['attempts']['prompt_tokens']} in / "
                       f"{ln['attempts']['completion_tokens']} out"
                       + ("" if ln["rankable"] else "  [unrankable]") + (f"  FAILED: {ln['failed']}" if ln["failed"] else ""))
            for p in ln["prompts"]:
                mark = "skip" if p["skipped"] else ("PASS" if p["majority_pass"] else "fail")
                typer.echo(f"    {mark:<4} {p['id']:<28} {p['passes']}/{p['runs']}{'  core' if p['core'] else ''}")

    @history_app.command("prune")
    def prune_cmd(
        ctx: typer.Context,
        keep: int = typer.Option(..., "--keep", help="Keep the N newest runs; delete older ones."),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """Bound the run database: keep the N newest runs (results folders are never touched)."""
        from hbench.plugins.history.query import prune

        engine = _reading_engine(_db(ctx, db))
        n = prune(engine, keep) if engine is not None else 0
        typer.echo(f"deleted {n} run{'s' if n != 1 else ''}; kept the {keep} newest")

    app.add_typer(history_app)

    @app.command("compare")
    def compare_cmd(
        a: str = typer.Argument(..., help="A run id, a results folder, or LANE@latest / LANE@-N."),
        b: str = typer.Argument(..., help="The same kinds as A (B is the newer side)."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
        html_out: Optional[str] = typer.Option(None, "--html", metavar="OUT.html", help="Also write a page."),
        fail_on_regression: bool = typer.Option(False, "--fail-on-regression",
                                                help="Exit 4 when a lane is significantly worse or lost a core prompt."),
        alpha: float = typer.Option(0.05, "--alpha", min=0.0, max=1.0, help="Significance level of the test."),
        db: Optional[str] = typer.Option(None, "--db", help=DB_HELP),
    ) -> None:
        """Per lane: the change in core_pass and pass_rate (both intervals), per-prompt flips and
        a paired exact test (McNemar exact on per-prompt majority verdicts)."""
        from hbench.plugins.history.compare import EXIT_REGRESSION, compare, to_text
        from hbench.plugins.history.query import resolve

        side_a, side_b = resolve(a, db), resolve(b, db)
        cmp = compare(side_a.label, side_a.scorecards, side_b.label, side_b.scorecards, alpha=alpha)
        if html_out:
            from hbench.plugins.history.html import compare_page
            from hbench.report import write_text_atomic

            write_text_atomic(Path(html_out), compare_page(cmp))
        typer.echo(json.dumps(cmp.to_dict(), indent=2) if as_json else to_text(cmp))
        if fail_on_regression and cmp.regression:
            raise typer.Exit(EXIT_REGRESSION)
