"""The ``hbench`` command line (typer): the global options, ``run``, ``plugins``, and the
commands every plugin adds through ``hbench_register_commands``.

Core holds only what every command shares: the global options, the plugin manager
(:func:`plugins_obj`, :func:`registries`), hbench.toml (:func:`load_config`), the lanes it
and the plugins name (:func:`all_lanes`) and :func:`err`. Every other command is a plugin,
the built-in ones in ``hbench.plugins.commands`` (doctor, throughput, probe, report,
validate and the listings), added by :class:`CommandGroup` when first needed.

Machine output goes to stdout, progress and logs to stderr. Exit codes: 0 ran, 1 a lane
failed to run, 2 bad input (config, suite, plugin), 3 a lane incomplete (errored or
missing attempts), 4 a CI gate missed (``--fail-under``), 130 interrupted.

Lazy subcommands: a command's module imports only typer at its top, and the module that
does the work is imported when the command runs, so ``hbench --help`` and ``hbench
plugins`` stay fast (tests/test_plugins.py guards the heavy modules).
"""

import json
import sys
from typing import Any, Optional

import typer
from typer.core import TyperGroup

from hbench.errors import HBenchError, PluginError

_state: dict[str, Any] = {"config": None, "strict": False}


class CommandGroup(TyperGroup):
    """``hbench``'s command group: core's commands, and every plugin's, added the first time
    a command core lacks is looked up or the commands are listed (``hbench run`` does
    without them; ``hbench plugins`` adds them to show a failure). Each plugin registers
    into an app of its own. One whose registration raises, or that takes a name already
    taken, is isolated like any plugin failure: none of its commands is added, ``hbench
    plugins`` marks it broken, a warning names it (the traceback at debug level);
    ``--strict-plugins`` makes it fatal (exit 2). A built-in's failure is our bug: it raises."""

    plugin_commands_added = False

    def add_plugin_commands(self, ctx: Any = None) -> None:
        if self.plugin_commands_added:
            return
        self.plugin_commands_added = True
        from hbench.plugin_manager import get_plugins

        # looked up before the options' callback runs: --strict-plugins from the parsed options
        pl = get_plugins(strict=bool(ctx.params.get("strict_plugins")) if ctx is not None else _state["strict"])
        own = typer.Typer(add_completion=False, rich_markup_mode=None)  # what the plugins add to
        added: list[tuple[str, dict[str, Any]]] = []
        for plugin, call in pl.call_each("hbench_register_commands", app=own):
            n_commands, n_groups = len(own.registered_commands), len(own.registered_groups)
            try:
                call()
                added.append((plugin, _click_commands(own.registered_commands[n_commands:],
                                                      own.registered_groups[n_groups:])))
            except Exception as exc:  # noqa: BLE001 - isolation is the point
                del own.registered_commands[n_commands:], own.registered_groups[n_groups:]
                if pl.infos[plugin].builtin:
                    raise  # our bug: its traceback
                self._fail(pl, plugin, f"hbench_register_commands: {type(exc).__name__}: {exc}", exc)
        # the first to register a name owns it, as in the registries: core, the built-ins,
        # then the others in the order they were registered (call order is the reverse)
        added.reverse()
        added.sort(key=lambda pc: not pl.infos[pc[0]].builtin)
        for plugin, commands in added:
            taken = sorted(set(commands) & set(self.commands))
            if taken:
                self._fail(pl, plugin, f"hbench_register_commands: command {', '.join(taken)} already exists "
                           "(in core or another plugin)")
                continue
            self.commands.update(commands)

    @staticmethod
    def _fail(pl: Any, plugin: str, error: str, exc: BaseException | None = None) -> None:
        info = pl.infos[plugin]
        if info.builtin:
            raise PluginError(f"built-in plugin {plugin!r}: {error}")  # our bug
        pl._fail(info, error, exc)  # noqa: SLF001 - isolated like a plugin that fails to load

    def list_commands(self, ctx: Any) -> list[str]:
        self.add_plugin_commands(ctx)
        return super().list_commands(ctx)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands:
            self.add_plugin_commands(ctx)
        return super().get_command(ctx, cmd_name)


def _click_commands(commands: list[Any], groups: list[Any]) -> dict[str, Any]:
    """Typer's command and group records as click commands by name, with readable value
    names in their help."""
    if not (commands or groups):
        return {}
    from hbench.cli_help import readable_metavars

    one = typer.Typer(add_completion=False, rich_markup_mode=None)
    one.registered_commands, one.registered_groups = list(commands), list(groups)
    return readable_metavars(typer.main.get_group(one)).commands


app = typer.Typer(
    name="hbench",
    help="Which local model + serving stack should be your agent brain? Runs a graded, "
    "tool-using suite N times per lane and ranks the lanes.",
    pretty_exceptions_show_locals=False,  # locals can hold API keys
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # plain click help: typer's rich help imports ~110 ms of rich (BENCHMARKS.md 5)
    context_settings={"help_option_names": ["-h", "--help"]},  # subcommands inherit it
    cls=CommandGroup,
)


def err(msg: str) -> None:
    """``msg`` on stderr, every known secret scrubbed."""
    from hbench.logging import scrub

    typer.echo(scrub(msg), err=True)


def _print_version(value: bool) -> None:
    if value:
        from hbench import __version__

        typer.echo(f"hbench {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", help="Print hbench's version and exit.", is_eager=True,
                                 callback=_print_version, expose_value=False),
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
    if strict_plugins and isinstance(ctx.command, CommandGroup):
        ctx.command.add_plugin_commands(ctx)  # a plugin whose commands fail is fatal too, whatever runs


def plugins_obj():  # noqa: ANN201
    from hbench.plugin_manager import get_plugins

    return get_plugins(strict=_state["strict"])


def registries():  # noqa: ANN201
    return plugins_obj().registries


def load_config():  # noqa: ANN201
    from hbench.config import load_config as _load

    return _load(_state["config"], lane_kinds=registries().lane_kinds.names())


def all_lanes() -> dict[str, Any]:
    """Plugin lanes, overridden by hbench.toml lanes of the same name (copies: a plugin's
    LaneSpec is never changed)."""
    from hbench.config import available_lanes

    return available_lanes(registries(), load_config())


# --------------------------------------------------------------------------- listing


@app.command("plugins")
def plugins_cmd(ctx: typer.Context,
                as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """List installed plugins: name, version, hooks, status and error."""
    pl = plugins_obj()
    pl.registries  # noqa: B018 - run the registration hooks so hook failures show
    root = ctx.find_root()
    if isinstance(root.command, CommandGroup):
        root.command.add_plugin_commands(root)  # and the command hooks
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


# --------------------------------------------------------------------------- run


@app.command("run")
def run_cmd(
    lanes: Optional[str] = typer.Option(None, "--lanes", help="all, or lane names a,b (default: [run].lanes, "
                                        "else every hbench.toml lane, else the embedded lane)."),
    suite: Optional[str] = typer.Option(None, "--suite", help="Suite name or folder (default hermes-brain)."),
    runs: Optional[int] = typer.Option(None, "--runs", help="Attempts per prompt (default: the suite's)."),
    core_only: Optional[bool] = typer.Option(None, "--core-only/--all-prompts", help="Run core prompts only."),
    tags: Optional[str] = typer.Option(None, "--tags", help="Only prompts with one of these tags, e.g. short "
                                       "(the quick tier)."),
    categories: Optional[str] = typer.Option(None, "--categories", help="Only prompts of these categories, "
                                             "comma-separated."),
    prefer: Optional[str] = typer.Option(None, "--prefer", help="What orders lanes tied on quality: memory "
                                         "(default: lower peak memory in use), speed (tok/s) or latency (p50)."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Seconds per attempt (a runaway past it)."),
    max_turns: Optional[int] = typer.Option(None, "--max-turns", help="Model turns per attempt."),
    concurrency: Optional[int] = typer.Option(None, "--concurrency", help="Attempts of a lane at once (default 1)."),
    adaptive: Optional[bool] = typer.Option(None, "--adaptive/--no-adaptive",
                                            help="Stop a prompt once its majority verdict cannot change."),
    resume: bool = typer.Option(False, "--resume", help="Skip every attempt already in OUT/journal.jsonl."),
    out: Optional[str] = typer.Option(None, "--out", help="Results folder (default results)."),
    lane_url: Optional[str] = typer.Option(None, "--lane-url", help="Ad-hoc lane: an OpenAI-compatible base URL."),
    model: Optional[str] = typer.Option(None, "--model", help="Model id for --lane-url."),
    api_key_env: Optional[str] = typer.Option(None, "--api-key-env", help="Env var holding the --lane-url API key."),
    discover: bool = typer.Option(False, "--discover", help="With no lane configured: run the model servers "
                                  "found on this box's usual ports (see `hbench discover`)."),
    slo_s: Optional[float] = typer.Option(None, "--slo-s", help="Goodput: the share of attempts solved within "
                                          "this many seconds (default: the attempt timeout)."),
    agent: Optional[str] = typer.Option(None, "--agent", help="Agent driver (default builtin; see `hbench agents`)."),
    report: Optional[str] = typer.Option(None, "--report", help="Reporters, e.g. json,md (default: all)."),
    sample_hz: Optional[float] = typer.Option(None, "--sample-hz", help="Telemetry samples per second (default 2)."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress",
                                            help="Progress bar on stderr (default: when it is a terminal)."),
    ready_timeout: Optional[float] = typer.Option(
        None, "--ready-timeout", help="Seconds to wait for each lane to answer ready (default: the lane's "
        "ready_timeout_s, else 15 for a server you started, 600 for one hbench starts)."),
    history: Optional[bool] = typer.Option(None, "--history/--no-history",
                                           help="Write each finished lane to the run database (default on; "
                                           "HBENCH_HISTORY=0 turns it off)."),
    db: Optional[str] = typer.Option(None, "--db", help="Run database URL (default: HBENCH_DB, else SQLite in "
                                     "the user data dir; postgresql+psycopg://... for a team)."),
    max_consecutive_errors: Optional[int] = typer.Option(
        None, "--max-consecutive-errors", help="Stop a lane after K errored attempts in a row (the stack is "
        "down; default 5, 0 = never). It is then incomplete: exit 3, and --resume re-runs what errored."),
    fail_under: Optional[str] = typer.Option(
        None, "--fail-under", help="CI gate: exit 4 when a lane misses one, e.g. core_pass=6,pass_rate=0.7 "
        "(a lane that is not ranked misses it too)."),
    parallel_lanes: Optional[int] = typer.Option(
        None, "--parallel-lanes", help="Run up to N lanes at once (managed lanes of one node stay one at a "
        "time; default 1)."),
    shard: Optional[str] = typer.Option(
        None, "--shard", help="I/N: run only slice I (0-based) of N of every lane's attempts, then join the "
        "shards' folders with `hbench merge` (docs/SCALE.md)."),
    ray: Optional[str] = typer.Option(
        None, "--ray", help="auto or a Ray ADDRESS: each lane a Ray task on the node labelled "
        "hbench-node=<its node> (pip install 'hermes-bench[ray]'; docs/SCALE.md)."),
) -> None:
    """Run the suite against lanes, N times per prompt; journal and score every attempt.

    Exit codes: 0 ran, 1 a lane failed to run, 2 bad input, 3 a lane is incomplete (errored
    or missing attempts), 4 --fail-under missed, 130 interrupted."""
    import os

    # the run database's writer (a plugin) reads these, as it does when they come from the environment
    if history is not None:
        os.environ["HBENCH_HISTORY"] = "1" if history else "0"
    if db is not None:
        os.environ["HBENCH_DB"] = db
    from hbench.runner import RunOptions, run

    given = {"--lanes": lanes, "--suite": suite, "--runs": runs, "--timeout": timeout, "--max-turns": max_turns,
             "--concurrency": concurrency, "--out": out, "--lane-url": lane_url, "--model": model,
             "--api-key-env": api_key_env, "--agent": agent, "--report": report, "--sample-hz": sample_hz,
             "--ready-timeout": ready_timeout, "--tags": tags, "--categories": categories, "--prefer": prefer,
             "--max-consecutive-errors": max_consecutive_errors, "--fail-under": fail_under,
             "--parallel-lanes": parallel_lanes, "--shard": shard, "--ray": ray}
    argv = (["--config", _state["config"]] if _state["config"] else []) + ["run"]
    for flag, value in given.items():
        if value is not None:
            argv += [flag, str(value)]
    for value, on, off in ((core_only, "--core-only", "--all-prompts"), (adaptive, "--adaptive", "--no-adaptive"),
                           (history, "--history", "--no-history")):
        if value is not None:
            argv.append(on if value else off)
    if discover:
        argv.append("--discover")
    if slo_s is not None:
        if not slo_s > 0:
            err(f"--slo-s {slo_s}: give the seconds within which a solved attempt counts as goodput (more than 0)")
            raise typer.Exit(2)
        argv += ["--slo-s", str(slo_s)]
    opts = RunOptions(
        suite=suite, lanes=lanes, lane_url=lane_url, model=model, api_key_env=api_key_env, runs=runs,
        core_only=core_only, timeout_s=timeout, max_turns=max_turns, concurrency=concurrency, adaptive=adaptive,
        resume=resume, out=out, agent=agent, report=report, sample_hz=sample_hz, config=_state["config"],
        progress=progress, argv=argv, ready_timeout_s=ready_timeout, tags=tags, categories=categories,
        prefer=prefer, max_consecutive_errors=max_consecutive_errors, fail_under=fail_under,
        parallel_lanes=parallel_lanes, shard=shard, discover=discover, slo_s=slo_s, ray=ray,
    )
    try:
        result = run(opts, plugins_obj())
    except KeyboardInterrupt:
        err("interrupted; every finished attempt is journaled. Resume with: hbench "
             + " ".join(argv + ["--resume"]))
        raise typer.Exit(130) from None
    for sc in result.scorecards:
        lane = sc.lane.get("name")
        if sc.failed:
            typer.echo(f"{lane}: FAILED - {sc.failed.splitlines()[0]}")
            continue
        from hbench.scoring import unranked_reason

        tok = f"{sc.throughput.tok_s:.1f} tok/s" if sc.throughput.tok_s else "tok/s n/a"
        cons = f"{sc.consistency:.2f}" if sc.consistency is not None else "–"
        missed = [line for line in result.fail_under if line.startswith(f"lane {lane!r}:")]
        typer.echo(f"{lane}: core {sc.core_pass}/{sc.core_n}, pass_rate {sc.pass_rate:.2f}, "
                   f"consistency {cons}, runaways {sc.runaway_rate:.2f}, {tok}"
                   + ("" if sc.rankable and sc.complete else f"  [not ranked: {unranked_reason(sc)}]")
                   + "".join(f"  [--fail-under missed: {m.split(': ', 1)[1]}]" for m in missed))
    typer.echo(f"results in {result.out_dir} (journal {result.journal})")
    if result.verdict:
        err(result.verdict)  # the last line on stderr: which lane failed what
    if result.exit_code:
        raise typer.Exit(result.exit_code)


# --------------------------------------------------------------------------- entry point


def build_command() -> Any:
    """The click command tree of ``app`` (a :class:`CommandGroup`: plugin commands join it
    when first needed), with readable value names in its help (``--runs N``, ``--out DIR``)."""
    from hbench.cli_help import readable_metavars

    return readable_metavars(typer.main.get_command(app))


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: maps HBenchError to its exit code and a clear message."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        rc = build_command()(args=argv, prog_name="hbench", standalone_mode=False)
        # standalone_mode=False turns `raise typer.Exit(n)` into a return value
        if isinstance(rc, int) and rc:
            raise SystemExit(rc)
    except HBenchError as exc:
        err(f"error: {exc}")
        raise SystemExit(exc.exit_code) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        err("aborted")
        raise SystemExit(130) from None
    except Exception as exc:  # click usage errors
        from typer import _click as click

        if isinstance(exc, click.ClickException):
            exc.show()
            raise SystemExit(2) from None
        _crash(exc)
        raise SystemExit(1) from None


def _crash(exc: BaseException) -> None:
    """A bug: print its traceback with every secret scrubbed (keys registered so far, and
    the values of *_KEY / *_TOKEN / *SECRET* / *PASSWORD* environment variables, since a
    crash can come before a lane's key is read) and no locals."""
    import os
    import traceback

    from hbench.logging import register_secret, scrub

    for name, value in os.environ.items():
        up = name.upper()
        if up.endswith(("_KEY", "_TOKEN")) or "SECRET" in up or "PASSWORD" in up:
            register_secret(value)
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    sys.stderr.write(scrub(text) + "hbench crashed: this is a bug; please report it with the traceback above\n")
