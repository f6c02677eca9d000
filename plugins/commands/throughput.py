"""``hbench throughput LANE``: decode tok/s and TTFT of a lane alone (``hbench.plugins.throughput``),
and with ``--depth`` / ``--concurrency-sweep`` the sweeps (``hbench.plugins.throughput.sweep``)."""

import json
from pathlib import Path
from typing import Optional

import typer

from hbench import cli
from hbench.plugins.commands.lane_args import KIND_HELP, pick_lane, status_printer


def _ints(text: Optional[str], flag: str) -> list[int] | None:
    """``--depth`` / ``--concurrency-sweep``: whole numbers separated by commas (exit 2 otherwise)."""
    if text is None:
        return None
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        vals = []
    if not vals or any(v < 0 for v in vals) or (flag == "--concurrency-sweep" and 0 in vals):
        cli.err(f"{flag} {text!r}: expected whole numbers separated by commas, like "
                + ("0,4096,16384" if flag == "--depth" else "1,2,4,8"))
        raise typer.Exit(2)
    return vals


def throughput_cmd(
    lane: Optional[str] = typer.Argument(None, help="A lane from `hbench lanes`."),
    lane_url: Optional[str] = typer.Option(None, "--lane-url", help="Ad-hoc lane: http://HOST:PORT/v1"),
    model: Optional[str] = typer.Option(None, "--model", help="Model id for --lane-url."),
    kind: Optional[str] = typer.Option(None, "--kind", help=KIND_HELP),
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
    """Decode tok/s and TTFT of LANE alone (one warm-up, then the median of --runs streamed requests),
    then the depth and concurrency sweeps (every request cache-busted): --depth /
    --concurrency-sweep, unbounded; without them the lane's bounded end-of-lane sweeps, as a
    run does (sweep_depths, sweep_concurrency, sweep_budget_s; default 20 s)."""
    import attrs

    from hbench.lanes import for_a_quick_look, open_lane
    from hbench.logging import scrub
    from hbench.plugins.throughput.measure import measure

    depths, levels = _ints(depth, "--depth"), _ints(concurrency_sweep, "--concurrency-sweep")
    spec, kind_obj = pick_lane(lane, lane_url, model, kind, api_key_env)
    spec = for_a_quick_look(spec, kind_obj, wait)
    with open_lane(spec, kind_obj, out_dir=Path(out), headroom_gb=cli.load_config().run.memory_headroom_gb,
                   on_status=status_printer()) as running:
        # asked for: these sweeps, unbounded; else the lane's bounded end-of-lane sweeps
        asked = {"depths": depths or [], "levels": levels or [], "sweep_budget_s": 0, "sweep_runs": 2,
                 "sweep_max_tokens": 32} if depths or levels else {}
        result = measure(running, max_tokens=max_tokens, runs=runs, **asked)
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
        cli.err(f"error: {result.error}")
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("throughput")(throughput_cmd)
