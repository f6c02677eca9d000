"""The ``hbench`` command line (typer).

Machine output goes to stdout, progress and logs to stderr. Exit codes: 0 ran, 1 a lane
failed to run, 2 bad input (config, suite, plugin), 3 a lane incomplete (errored or
missing attempts), 4 a CI gate missed (``--fail-under``), 130 interrupted. Keep imports inside commands so
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
    rich_markup_mode=None,  # plain click help: typer's rich help imports ~110 ms of rich (BENCHMARKS.md 5)
    context_settings={"help_option_names": ["-h", "--help"]},  # subcommands inherit it
)

_state: dict[str, Any] = {"config": None, "strict": False}


def _err(msg: str) -> None:
    from hbench.logging import scrub

    typer.echo(scrub(msg), err=True)


def _print_version(value: bool) -> None:
    if value:
        from hbench import __version__

        typer.echo(f"hbench {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
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
def lanes_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List candidate lanes (hbench.toml and plugins) and where each came from."""
    lanes = all_lanes()
    from hbench.lanes import is_managed

    kinds = registries().lane_kinds

    def managed(s):  # noqa: ANN001, ANN202
        return is_managed(s, kinds.get(s.kind)) if s.kind in kinds else bool(s.start)

    from hbench.logging import scrub

    rows = [{"name": n, "kind": s.kind, "model": s.model, "base_url": scrub(s.base_url) if s.base_url else None,
             "managed": managed(s), "source": s.source} for n, s in sorted(lanes.items())]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("no lanes configured (add [lanes.NAME] to hbench.toml, or install a lane plugin)")
    for r in rows:
        typer.echo(f"{r['name']:<28} kind={r['kind']:<9} model={r['model'] or '?'}  from {r['source']}")


@app.command("checks")
def checks_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List check kinds and the plugin that registered each."""
    _list_registry("checks", as_json, lambda c: {"gate": getattr(c, "gate", None)})


@app.command("lane-kinds")
def lane_kinds_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List lane kinds (serving backends)."""
    _list_registry("lane_kinds", as_json, lambda k: {"description": getattr(k, "description", "")})


@app.command("reporters")
def reporters_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """List reporters (result sinks)."""
    _list_registry("reporters", as_json, lambda r: {"description": getattr(r, "description", "")})


@app.command("probe")
def probe_cmd(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output (JSON lines with --watch)."),
    watch: bool = typer.Option(False, "--watch", help="Keep reading until Ctrl-C (or --count readings)."),
    hz: float = typer.Option(1.0, "--hz", help="Readings per second with --watch."),
    count: Optional[int] = typer.Option(None, "--count", help="With --watch: stop after N readings."),
    pid: Optional[int] = typer.Option(None, "--pid", help="A lane server's pid: report its process-tree RSS."),
    lane: Optional[str] = typer.Option(None, "--lane", help="Use this lane's options (metrics_url)."),
    metrics_url: Optional[str] = typer.Option(None, "--metrics-url",
                                              help="Scrape this Prometheus URL (DCGM exporter, vLLM /metrics)."),
) -> None:
    """Telemetry now: every probe's status (and why one is unavailable) and its readings."""
    import time

    from hbench.errors import BadInput
    from hbench.models import LaneSpec
    from hbench.probes import Sampler

    if not hz > 0:
        raise BadInput(f"--hz must be a positive number of readings per second, got {hz}")
    if count is not None and count < 1:
        raise BadInput(f"--count must be at least 1, got {count}")
    if pid is not None:
        import psutil

        if not psutil.pid_exists(pid):
            raise BadInput(f"--pid {pid}: no such process (give the pid of a running lane server)")
    spec = None
    if lane is not None:
        lanes = all_lanes()
        if lane not in lanes:
            raise BadInput(f"--lane {lane!r}: unknown lane (configured: {', '.join(sorted(lanes)) or 'none'}; "
                           "see `hbench lanes`)")
        spec = lanes[lane]
    if metrics_url:
        spec = LaneSpec(name=spec.name if spec else "probe", options={**(spec.options if spec else {}),
                                                                      "metrics_url": metrics_url})
    sampler = Sampler([e.obj for e in registries().probes.entries()], hz=hz)
    sampler.open(spec.name if spec else "probe", pid=pid, lane=spec)

    def show(reading: dict[str, Any], first: bool) -> None:
        if as_json:
            typer.echo(json.dumps(reading, indent=None if watch else 2))
            return
        if first:
            for name, p in reading["probes"].items():
                typer.echo(f"{name:<12} {'ok' if p['status'] == 'ok' else p['status']}")
            typer.echo("")
        vals = reading["readings"]
        typer.echo("  ".join(f"{k}={v}" for k, v in vals.items()) if vals else "no readings")

    try:
        time.sleep(0.3)  # CPU percent is a rate: give it an interval
        n = 0
        while True:
            show(sampler.reading(), first=n == 0)
            n += 1
            if not watch or (count is not None and n >= count):
                break
            time.sleep(1.0 / hz)
    except KeyboardInterrupt:
        pass
    finally:
        sampler.close_probes()


# --------------------------------------------------------------------------- lane checks


def _pick_lane(lane: Optional[str], lane_url: Optional[str], model: Optional[str], kind: str,
               api_key_env: Optional[str]):  # noqa: ANN202
    """The lane named as `hbench lanes` shows it, or the ad-hoc one --lane-url describes."""
    from hbench.errors import BadInput
    from hbench.lanes import adhoc_lane, lookup_lane

    kinds = registries().lane_kinds
    if lane_url:
        if kind not in kinds:
            raise BadInput(f"--kind: {kinds.unknown(kind)}")
        spec = adhoc_lane(lane_url, model, kind, api_key_env)
        return spec, kinds.get(kind)
    return lookup_lane(lane, all_lanes(), kinds)


def _status_printer():  # noqa: ANN202
    return lambda msg: _err(f"  {msg}")


@app.command("doctor")
def doctor_cmd(
    lane: Optional[str] = typer.Argument(None, help="A lane from `hbench lanes`."),
    lane_url: Optional[str] = typer.Option(None, "--lane-url", help="Ad-hoc lane: http://HOST:PORT/v1"),
    model: Optional[str] = typer.Option(None, "--model", help="Model id for --lane-url."),
    kind: str = typer.Option("openai", "--kind", help="Lane kind for --lane-url (see `hbench lane-kinds`)."),
    api_key_env: Optional[str] = typer.Option(None, "--api-key-env", help="Env var holding the key for --lane-url."),
    out: str = typer.Option("results", "--out", help="Where a managed lane's log goes (OUT/logs/)."),
    wait: float = typer.Option(10.0, "--wait", help="Seconds an unmanaged lane gets to answer ready."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Is LANE ready? Which model, what context? Do tool calls come back structured? Each finding with its fix."""
    from pathlib import Path

    from hbench.doctor import doctor

    spec, kind_obj = _pick_lane(lane, lane_url, model, kind, api_key_env)
    findings = doctor(spec, kind_obj, out_dir=Path(out), headroom_gb=load_config().run.memory_headroom_gb,
                      on_status=_status_printer(), wait_s=wait)
    from hbench.logging import scrub

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


@app.command("throughput")
def throughput_cmd(
    lane: Optional[str] = typer.Argument(None, help="A lane from `hbench lanes`."),
    lane_url: Optional[str] = typer.Option(None, "--lane-url", help="Ad-hoc lane: http://HOST:PORT/v1"),
    model: Optional[str] = typer.Option(None, "--model", help="Model id for --lane-url."),
    kind: str = typer.Option("openai", "--kind", help="Lane kind for --lane-url (see `hbench lane-kinds`)."),
    api_key_env: Optional[str] = typer.Option(None, "--api-key-env", help="Env var holding the key for --lane-url."),
    max_tokens: int = typer.Option(128, "--max-tokens", min=2, help="Tokens generated per request."),
    runs: int = typer.Option(3, "--runs", min=1, help="Measured requests (after one warm-up)."),
    out: str = typer.Option("results", "--out", help="Where a managed lane's log goes (OUT/logs/)."),
    wait: float = typer.Option(10.0, "--wait", help="Seconds an unmanaged lane gets to answer ready."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    depth: Optional[str] = typer.Option(None, "--depth", help="Context-depth sweep, prompt tokens: e.g. "
                                        "0,4096,16384 (TTFT, prefill and decode tok/s at each)."),
    concurrency_sweep: Optional[str] = typer.Option(None, "--concurrency-sweep", help="Streams at once: e.g. "
                                                    "1,2,4,8 (per-stream and aggregate decode tok/s)."),
) -> None:
    """Decode tok/s and TTFT of LANE alone (one warm-up, then the median of --runs streamed requests);
    with --depth / --concurrency-sweep, the sweeps too (every request cache-busted)."""
    from pathlib import Path

    import attrs

    from hbench.lanes import for_a_quick_look, open_lane
    from hbench.logging import scrub
    from hbench.throughput import measure

    def _ints(text: Optional[str], flag: str) -> list[int] | None:
        if text is None:
            return None
        try:
            vals = [int(x) for x in text.split(",") if x.strip()]
        except ValueError:
            vals = []
        if not vals or any(v < 0 for v in vals) or (flag == "--concurrency-sweep" and 0 in vals):
            _err(f"{flag} {text!r}: expected whole numbers separated by commas, like "
                 + ("0,4096,16384" if flag == "--depth" else "1,2,4,8"))
            raise typer.Exit(2)
        return vals

    depths, levels = _ints(depth, "--depth"), _ints(concurrency_sweep, "--concurrency-sweep")
    spec, kind_obj = _pick_lane(lane, lane_url, model, kind, api_key_env)
    spec = for_a_quick_look(spec, kind_obj, wait)
    with open_lane(spec, kind_obj, out_dir=Path(out), headroom_gb=load_config().run.memory_headroom_gb,
                   on_status=_status_printer()) as running:
        result = measure(running, max_tokens=max_tokens, runs=runs)
        if result.error is None and (depths or levels):
            from hbench.sweep import sweep

            result.sweeps = sweep(running, depths, levels)
    if as_json:
        typer.echo(scrub(json.dumps({"lane": spec.name, **attrs.asdict(result)}, indent=2)))
    elif result.error is None:
        server = f"  server {result.server_tok_s:.1f} tok/s" if result.server_tok_s is not None else ""
        flag = "  (client and server differ by >10%)" if result.disagreement else ""
        typer.echo(f"{spec.name}: {result.tok_s:.1f} tok/s decode, TTFT {result.ttft_ms:.0f} ms{server}{flag}")
        for s in result.samples:
            typer.echo(f"  run {s['run']}: {s['tok_s']} tok/s, {s['tokens']} tokens ({s['token_source']}), "
                       f"TTFT {s['ttft_ms']} ms")
        for p in (result.sweeps.get("depth") or {}).get("points", []):
            typer.echo(f"  depth {p['depth']}: prompt {p['prompt_tokens']} tokens, TTFT {p['ttft_ms']} ms, prefill "
                       f"{p['prefill_tok_s']} tok/s, decode {p['decode_tok_s']} tok/s, ITL p50/p95 "
                       f"{p['itl_p50_ms']}/{p['itl_p95_ms']} ms")
        if (result.sweeps.get("depth") or {}).get("prefill_tok_s_fit"):
            typer.echo(f"  prefill (fitted over depths): {result.sweeps['depth']['prefill_tok_s_fit']} tok/s")
        for p in (result.sweeps.get("concurrency") or {}).get("points", []):
            typer.echo(f"  {p['concurrency']} at once: {p['per_stream_tok_s']} tok/s per stream, "
                       f"{p['aggregate_tok_s']} tok/s aggregate")
    if result.error is not None:
        _err(f"error: {result.error}")
        raise typer.Exit(1)


@app.command("report")
def report_cmd(
    inputs: list[str] = typer.Argument(..., metavar="DIR_OR_FILES...",
                                       help="Scorecards (<lane>.json) or results folders holding them."),
    out: Optional[str] = typer.Option(None, "--out", help="Where to write (default: the first input's folder)."),
    allow_mixed: bool = typer.Option(False, "--allow-mixed",
                                     help="Compare scorecards from different suite hashes (marked in the table)."),
    report: str = typer.Option("md,html", "--report", help="Reporters to run, comma-separated."),
    prefer: str = typer.Option("memory", "--prefer", help="What orders lanes tied on quality: memory (lower "
                               "peak memory in use), speed (higher tok/s) or latency (lower p50)."),
) -> None:
    """Rebuild summary.md and report.html from scorecards alone (e.g. lanes run on several machines)."""
    from hbench.report import rebuild_reports
    from hbench.scoring import PREFERENCES

    if prefer not in PREFERENCES:
        _err(f"error: --prefer {prefer}: choose one of {', '.join(PREFERENCES)} (what orders lanes tied on quality)")
        raise typer.Exit(2)
    names = [n.strip() for n in report.split(",") if n.strip()]
    for path in rebuild_reports(inputs, out, allow_mixed=allow_mixed, reporters=names, registries=registries(),
                                prefer=prefer):
        typer.echo(str(path))


# --------------------------------------------------------------------------- suites


def _suite_summary(s: Any) -> dict[str, Any]:
    core = sum(p.core for p in s.prompts)
    return {
        "name": s.name, "version": s.version, "layout": s.layout, "path": s.path,
        "prompts": len(s.prompts), "core": core,
        "conditional": sorted({p.conditional for p in s.prompts if p.conditional}),
        "vibe": sum(p.vibe for p in s.prompts), "sha256": s.sha256, "fixtures_sha256": s.fixtures_sha256,
    }


@app.command("validate")
def validate_cmd(
    suite: str = typer.Argument(..., help="A suite name (see `hbench suites`) or a suite folder."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Check a suite: every problem as `file:line: key: message (fix)`, or a one-line summary. Exit 2 on problems."""
    from hbench.errors import SuiteError
    from hbench.suite import load_suite

    try:
        s = load_suite(suite, registries())
    except SuiteError as exc:
        if as_json:
            typer.echo(json.dumps({"ok": False, "suite": suite, "problems": exc.problems}, indent=2))
        else:
            for line in exc.problems:
                typer.echo(line)
            n = len(exc.problems)
            _err(f"{suite}: {n} problem{'s' if n != 1 else ''}")
        raise typer.Exit(2) from None
    info = _suite_summary(s)
    if as_json:
        typer.echo(json.dumps({"ok": True, **info}, indent=2))
        return
    cond = f", conditional: {', '.join(info['conditional'])}" if info["conditional"] else ""
    typer.echo(f"ok: {s.name} v{s.version}: {info['prompts']} prompts ({info['core']} core{cond}; "
               f"{info['vibe']} vibe), fixtures sha256 {s.fixtures_sha256[:16]}, suite sha256 {s.sha256[:16]}")


@app.command("suites")
def suites_cmd(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """List bundled and plugin suites: name, version, prompts, where from."""
    from hbench.errors import SuiteError
    from hbench.suite import load_suite

    reg = registries()
    rows = []
    for e in reg.suites.entries():
        row: dict[str, Any] = {"name": e.name, "plugin": e.plugin, "path": str(e.obj)}
        try:
            info = _suite_summary(load_suite(str(e.obj), reg))
            row.update({k: info[k] for k in ("version", "prompts", "core", "conditional", "fixtures_sha256")})
            row["problems"] = []
        except SuiteError as exc:
            row["problems"] = exc.problems
        rows.append(row)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("no suites installed (pass a suite folder to --suite, or install a suite plugin)")
    for r in rows:
        if r["problems"]:
            typer.echo(f"{r['name']:<20} INVALID ({len(r['problems'])} problems: hbench validate {r['path']})  ({r['plugin']})")
        else:
            typer.echo(f"{r['name']:<20} v{r['version']:<6} {r['prompts']} prompts ({r['core']} core)  "
                       f"fixtures {r['fixtures_sha256'][:12]}  ({r['plugin']})  {r['path']}")


# --------------------------------------------------------------------------- agents


@app.command("agents")
def agents_cmd(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """List agent drivers and whether each is usable here (and how to fix it if not)."""
    rows = []
    for e in registries().agents.entries():
        try:
            ok, why = e.obj.usable()
            info = e.obj.describe()
        except Exception as exc:  # noqa: BLE001 - one broken driver must not hide the rest
            ok, why, info = False, f"usable() raised {type(exc).__name__}: {exc}", {}
        rows.append({"name": e.name, "plugin": e.plugin, "usable": bool(ok), "detail": why,
                     "version": info.get("version"),
                     "capabilities": sorted(getattr(e.obj, "capabilities", ()) or ())})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("no agent drivers installed")
    for r in rows:
        state = "usable" if r["usable"] else "NOT USABLE"
        typer.echo(f"{r['name']:<12} {state:<10} {r['detail']}  ({r['plugin']})")


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
            _err(f"--slo-s {slo_s}: give the seconds within which a solved attempt counts as goodput (more than 0)")
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
        _err("interrupted; every finished attempt is journaled. Resume with: hbench "
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
        _err(result.verdict)  # the last line on stderr: which lane failed what
    if result.exit_code:
        raise typer.Exit(result.exit_code)


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


def build_command() -> Any:
    """The click command tree of ``app`` (plugin commands included once added), with
    readable value names in its help (``--runs N``, ``--out DIR``)."""
    from hbench.cli_help import readable_metavars

    return readable_metavars(typer.main.get_command(app))


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: maps HBenchError to its exit code and a clear message."""
    argv = sys.argv[1:] if argv is None else argv
    if "--strict-plugins" in argv:
        _state["strict"] = True
    try:
        _add_plugin_commands()
        rc = build_command()(args=argv, prog_name="hbench", standalone_mode=False)
        # standalone_mode=False turns `raise typer.Exit(n)` into a return value
        if isinstance(rc, int) and rc:
            raise SystemExit(rc)
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
