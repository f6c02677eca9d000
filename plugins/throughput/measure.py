"""The throughput probe: decode speed and time to first token on a warm lane
(``hbench_measure_throughput`` of the built-in throughput plugin, and ``hbench throughput``).

DESIGN.md / LANES.md method: one warm-up, then ``runs`` streamed requests of a fixed
prompt behind a per-run nonce (defeats prompt caches), temperature 0, a fixed seed and
``max_tokens``, ``ignore_eos`` where the server accepts it (a server that refuses the
extra fields is asked again without them). Per run:

* TTFT = request sent -> first chunk carrying content, reasoning or a tool-call delta;
* decode tok/s = (tokens - 1) / (t_last - t_first) over the content-bearing chunks, with
  ``tokens`` from ``usage`` (``stream_options.include_usage``), else llama.cpp
  ``timings.predicted_n``, else the number of chunks.

The result holds the median of the runs, every sample, and the server's own figure
(llama.cpp ``timings.predicted_per_second``; vLLM/NIM inter-token-latency metric deltas),
with ``disagreement`` set when client and server differ by more than 10%.

The probe streams over its own httpx connection rather than the chat client: it needs a
timestamp per chunk and the raw ``timings`` object, which a chat response does not keep.

Then the throughput v2 sweeps (:mod:`hbench.plugins.throughput.sweep`) fill ``Throughput.sweeps``: the lane's
``sweep_depths`` / ``sweep_concurrency`` (default the sweep's defaults, ``[]`` = off),
bounded by ``sweep_budget_s`` (default 20 s, 0 = no limit), every request cache-busted.
"""

from __future__ import annotations

import statistics
import uuid
from typing import Any

import httpx

from hbench.lanes import RunningLane, lane_http
from hbench.logging import get_logger, scrub
from hbench.models import Throughput
from hbench.plugins.throughput.stream import Rejected, timed_stream
from hbench.plugins.throughput.sweep import BOUNDED_MAX_TOKENS, DEFAULT_BUDGET_S, DEFAULT_DEPTHS, DEFAULT_LEVELS, sweep

PROMPT = (
    "Write the numbers from one to five hundred as English words, one per line, "
    "with no other text."
)
#: request extras tried in order until the server accepts one (rejected = HTTP 400/422)
EXTRAS_LADDER: tuple[dict[str, Any], ...] = (
    {"ignore_eos": True, "stream_options": {"include_usage": True},
     "chat_template_kwargs": {"enable_thinking": False}},
    {"ignore_eos": True, "stream_options": {"include_usage": True}},
    {"stream_options": {"include_usage": True}},
    {},
)
DISAGREEMENT = 0.10


def _stream_once(http: httpx.Client, url: str, body: dict[str, Any]) -> dict[str, Any]:
    """One streamed request (:func:`~hbench.plugins.throughput.stream.timed_stream`, no
    deadline); returns the raw timing facts :func:`sample_from` reads."""
    raw = timed_stream(http, url, body)
    times = raw["times"]
    return {**raw, "t_first": times[0] if times else None, "t_last": times[-1] if times else None,
            "chunks": len(times)}


def sample_from(raw: dict[str, Any], run: int) -> dict[str, Any]:
    """Turn one request's timing facts into a throughput sample (pure)."""
    tokens, source = raw["chunks"], "chunks"
    usage, timings = raw.get("usage") or {}, raw.get("timings") or {}
    if isinstance(usage.get("completion_tokens"), int) and usage["completion_tokens"] > 0:
        tokens, source = usage["completion_tokens"], "usage"
    elif isinstance(timings.get("predicted_n"), int) and timings["predicted_n"] > 0:
        tokens, source = timings["predicted_n"], "timings"
    ttft_ms = decode_s = tok_s = None
    if raw["t_first"] is not None:
        ttft_ms = (raw["t_first"] - raw["t0"]) * 1000.0
        decode_s = raw["t_last"] - raw["t_first"]
        if tokens > 1 and decode_s > 0:
            tok_s = (tokens - 1) / decode_s
    server = timings.get("predicted_per_second")
    return {
        "run": run, "tokens": tokens, "token_source": source,
        "ttft_ms": None if ttft_ms is None else round(ttft_ms, 2),
        "decode_s": None if decode_s is None else round(decode_s, 4),
        "tok_s": None if tok_s is None else round(tok_s, 3),
        "server_tok_s": float(server) if isinstance(server, (int, float)) else None,
        "finish_reason": raw.get("finish_reason"),
    }


def disagrees(client: float | None, server: float | None, limit: float = DISAGREEMENT) -> bool:
    """True when both figures exist and differ by more than ``limit`` of the server's."""
    if not client or not server:
        return False
    return abs(client - server) / server > limit


def sweep_plan(spec: Any, depths: list[int] | None = None, levels: list[int] | None = None,
               budget_s: float | None = None) -> tuple[list[int], list[int], float | None]:
    """What the sweeps measure: the arguments, else the lane's settings, else the defaults;
    ``[]`` = that sweep off; budget 0 = no limit (returned as None)."""
    def pick(arg: Any, own: Any, default: Any) -> Any:
        return arg if arg is not None else own if own is not None else default

    depths = pick(depths, getattr(spec, "sweep_depths", None), list(DEFAULT_DEPTHS))
    levels = pick(levels, getattr(spec, "sweep_concurrency", None), list(DEFAULT_LEVELS))
    budget = pick(budget_s, getattr(spec, "sweep_budget_s", None), DEFAULT_BUDGET_S)
    return list(depths), list(levels), (float(budget) or None)


def measure(running: RunningLane, *, max_tokens: int = 128, runs: int = 3, timeout_s: float = 300.0,
            depths: list[int] | None = None, levels: list[int] | None = None,
            sweep_budget_s: float | None = None, sweep_runs: int = 1,
            sweep_max_tokens: int = BOUNDED_MAX_TOKENS) -> Throughput:
    """Measure ``running`` (see the module docstring). Never raises for a server problem:
    the returned :class:`Throughput` carries ``error`` instead. ``depths`` / ``levels`` /
    ``sweep_budget_s``: the sweeps (None = the lane's settings, else the defaults)."""
    log = get_logger()
    spec, kind = running.spec, running.kind
    url = f"{(spec.base_url or '').rstrip('/')}/chat/completions"
    model = spec.model or running.served_model

    def body(extras: dict[str, Any]) -> dict[str, Any]:
        b: dict[str, Any] = {
            "messages": [{"role": "user", "content": f"[run {uuid.uuid4().hex}]\n{PROMPT}"}],
            "stream": True, "temperature": 0, "seed": 0, "max_tokens": max_tokens, **extras,
        }
        if model:
            b["model"] = model
        return b

    timeout = httpx.Timeout(timeout_s, connect=10.0)
    try:
        with lane_http(spec, timeout=timeout_s) as http:
            http.timeout = timeout
            extras = None
            last: Rejected | None = None
            for candidate in EXTRAS_LADDER:  # the warm-up also finds what the server accepts
                try:
                    _stream_once(http, url, body(candidate))
                    extras = candidate
                    break
                except Rejected as exc:
                    last = exc
                    if exc.status not in (400, 422):
                        break
                    log.info("throughput.extras_rejected", lane=spec.name, extras=sorted(candidate),
                             status=exc.status)
            if extras is None:
                return Throughput(error=scrub(f"lane {spec.name!r}: the server refused the streamed "
                                              f"request ({last}); check the model id and base_url"))
            before = kind.server_metrics(spec, http)
            samples = [sample_from(_stream_once(http, url, body(extras)), i + 1) for i in range(runs)]
            after = kind.server_metrics(spec, http)
    except Rejected as exc:
        return Throughput(error=scrub(f"lane {spec.name!r}: the server refused a request mid-measure ({exc})"))
    except httpx.HTTPError as exc:
        return Throughput(error=scrub(f"lane {spec.name!r}: {type(exc).__name__}: {exc}"))

    rates = [s["tok_s"] for s in samples if s["tok_s"] is not None]
    ttfts = [s["ttft_ms"] for s in samples if s["ttft_ms"] is not None]
    server_rates = [s["server_tok_s"] for s in samples if s["server_tok_s"] is not None]
    server = statistics.median(server_rates) if server_rates else None
    if server is None and before is not None and after is not None:
        server = kind.server_decode_tok_s(before, after)
    for s in samples:
        s["ignore_eos"] = bool(extras.get("ignore_eos"))
    if not rates:
        return Throughput(samples=samples, error=(
            f"lane {spec.name!r}: fewer than 2 tokens came back per request, so no decode rate "
            f"(finish_reason {samples[-1]['finish_reason'] if samples else None!r}); "
            f"the server may not honour ignore_eos"))
    tok_s = statistics.median(rates)
    result = Throughput(
        tok_s=round(tok_s, 3), ttft_ms=round(statistics.median(ttfts), 2) if ttfts else None,
        samples=samples, server_tok_s=None if server is None else round(server, 3),
        disagreement=disagrees(tok_s, server),
    )
    log.info("throughput.measured", lane=spec.name, tok_s=result.tok_s, ttft_ms=result.ttft_ms,
             server_tok_s=result.server_tok_s, disagreement=result.disagreement)
    s_depths, s_levels, budget = sweep_plan(spec, depths, levels, sweep_budget_s)
    if s_depths or s_levels:
        try:
            result.sweeps = sweep(running, s_depths, s_levels, budget_s=budget, base_ttft_ms=result.ttft_ms,
                                  base_tok_s=result.tok_s, runs=sweep_runs, max_tokens=sweep_max_tokens,
                                  level_max_tokens=sweep_max_tokens, extras=extras, timeout_s=timeout_s)
        except Exception as exc:  # noqa: BLE001 - a sweep bug never costs the single-stream figure
            result.sweeps = {"error": scrub(f"{type(exc).__name__}: {exc}")}
            log.warning("throughput.sweep_failed", lane=spec.name, error=result.sweeps["error"])
        log.info("throughput.swept", lane=spec.name, elapsed_s=result.sweeps.get("elapsed_s"),
                 depths=[p["depth"] for p in (result.sweeps.get("depth") or {}).get("points", [])],
                 levels=[p["concurrency"] for p in (result.sweeps.get("concurrency") or {}).get("points", [])])
    return result
