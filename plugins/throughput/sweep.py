"""Throughput v2: context-depth and concurrency sweeps on a warm lane (issue 21).

A single-stream tok/s at an empty context hides what a brain does at a growing context
and under its own concurrency. ``hbench throughput LANE --depth 0,4096,16384
--concurrency-sweep 1,2,4,8`` measures:

* **depth sweep**: at each depth D, streamed requests whose prompt is about D tokens of
  filler: TTFT, prefill tok/s (prompt tokens / TTFT, so it includes the fixed request
  overhead), decode tok/s, TPOT and inter-token latency p50/p95. Across depths the
  prefill rate is also fitted (least squares of TTFT against prompt tokens), which
  removes the fixed overhead: ``prefill_tok_s_fit``;
* **concurrency sweep**: N streams at once (one thread each): per-stream decode tok/s
  (median) and aggregate tok/s (all tokens after each stream's first, over the span from
  the first first-token to the last token).

**Cache busting.** Every measured request starts with its own nonce (a fresh uuid) before
anything else, so no two prompts share a prefix and no server prefix cache can answer
from a previous request. The tokens the server says it took from its cache (llama.cpp
``timings.cache_n``, OpenAI/vLLM ``usage.prompt_tokens_details.cached_tokens``) are kept
per request (``cached_tokens``) so a hit would show (``cache_hits``: requests with more than
:data:`CACHE_HEAD_TOKENS` cached, the template's head before the nonce aside; the real
llama-server reports its BOS token as cached for every prompt). The server's own prefix-cache hit
rate (SGLang ``sglang:cache_hit_rate``; vLLM ``prefix_cache_hits/queries`` deltas) is
reported when its metrics give it.

**At the end of every lane** (:func:`hbench.plugins.throughput.measure.measure`) the sweeps run bounded:
the lane's ``sweep_depths`` / ``sweep_concurrency`` (default :data:`DEFAULT_DEPTHS` /
:data:`DEFAULT_LEVELS`, ``[]`` = off), one request per depth, :data:`BOUNDED_MAX_TOKENS`
tokens each; the two sweeps take turns, each in rising order, and a point runs only when
its time, predicted from what was measured so far, fits in what is left of
``sweep_budget_s`` (default :data:`DEFAULT_BUDGET_S`); a request still running at the
budget's end is cut. What did not run is listed under ``skipped``
with why. Depths the lane's context cannot hold are skipped too.
"""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
import uuid
from typing import Any

import httpx

from hbench.lanes import RunningLane, lane_http
from hbench.logging import get_logger, scrub
from hbench.plugins.throughput.stream import Cut, timed_stream
from hbench.scoring import percentile

#: the end-of-lane sweeps unless the lane says otherwise (hbench.toml: sweep_depths,
#: sweep_concurrency, sweep_budget_s). 256 gives CPU lanes a cheap second depth for the fit
DEFAULT_DEPTHS = (0, 256, 1024, 4096, 16384)
DEFAULT_LEVELS = (1, 2, 4, 8)
#: seconds the end-of-lane sweeps may add to a lane (the embedded Gemma lane on a 2-core box)
DEFAULT_BUDGET_S = 20.0
#: tokens generated per sweep request at the end of a lane (15 inter-token gaps per request)
BOUNDED_MAX_TOKENS = 16
#: until a depth point measures it, prefill is assumed this many times faster than decode
#: (llama-server on this 2-core box: 84 vs 20 tok/s; GPUs: far more)
PREFILL_OVER_DECODE = 4.0
#: prompt tokens kept free beyond depth + max_tokens (chat template, nonce, instruction)
CONTEXT_MARGIN = 64
#: cached tokens a cache-busted request may still report: the chat template's head before the
#: nonce (llama-server reports its BOS token, 1, as cached for every prompt); more is a hit
CACHE_HEAD_TOKENS = 16

#: concurrent streams sharing one httpx client (its pool holds 100 connections)
STREAMS_PER_CLIENT = 64

#: common words: about one token each for most tokenizers
WORDS = ("the of and to in is it that for on was with as be at by this had not are but from or have an they "
         "which one you were her all she there would their we him been has when who will more no if out so said "
         "what up its about into than them can only other new some could time these two may then do first any "
         "my now such like our over man me even most made after also did many before must through back years "
         "where much your way well down should because each just those people how too little state good very "
         "make world still own see men work long get here between both life being under never day same another "
         "know while last might us great old year off come since against go came right used take three").split()


def filler(n_words: int, seed: int = 0) -> str:
    """``n_words`` common words in a deterministic, non-repeating-looking order."""
    k = len(WORDS)
    return " ".join(WORDS[(i * 7 + seed * 13 + (i // k) * 3) % k] for i in range(n_words))


def fit_rate(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of seconds against tokens, as tokens per second (None if flat)."""
    pts = [(x, y) for x, y in points if x is not None and y is not None]
    if len(pts) < 2 or len({x for x, _ in pts}) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    den = sum((x - mx) ** 2 for x, _ in pts)
    slope = sum((x - mx) * (y - my) for x, y in pts) / den  # seconds per token
    return 1.0 / slope if slope > 0 else None


def stream(http: httpx.Client, url: str, body: dict[str, Any], deadline: float | None = None) -> dict[str, Any]:
    """One streamed request (:func:`~hbench.plugins.throughput.stream.timed_stream`): per-token
    timestamps, tokens, prompt and cached tokens. With a ``deadline``
    (``time.perf_counter()``), a request still running then raises :class:`Cut`."""
    raw = timed_stream(http, url, body, deadline)
    times, usage, timings = raw["times"], raw["usage"], raw["timings"]
    tokens = usage.get("completion_tokens") if isinstance(usage.get("completion_tokens"), int) else None
    tokens = tokens or timings.get("predicted_n") or len(times)
    prompt = usage.get("prompt_tokens") if isinstance(usage.get("prompt_tokens"), int) else timings.get("prompt_n")
    details = usage.get("prompt_tokens_details") if isinstance(usage.get("prompt_tokens_details"), dict) else {}
    cached = details.get("cached_tokens", timings.get("cache_n"))
    return {"t0": raw["t0"], "times": times, "t_finish": raw["t_finish"], "tokens": int(tokens),
            "prompt_tokens": prompt, "cached_tokens": cached if isinstance(cached, int) else None}


def figures(raw: dict[str, Any]) -> dict[str, Any]:
    """TTFT, decode tok/s, TPOT and ITL p50/p95 of one request (pure)."""
    times, n = raw["times"], raw["tokens"]
    out: dict[str, Any] = {"tokens": n, "prompt_tokens": raw.get("prompt_tokens"),
                           "cached_tokens": raw.get("cached_tokens"), "ttft_ms": None, "decode_tok_s": None,
                           "tpot_ms": None, "itl_p50_ms": None, "itl_p95_ms": None}
    if not times:
        if raw.get("t_finish") is not None:  # no token: the model ended at once (a server ignoring
            # ignore_eos, as llama-cpp-python's does); the wait still measures the prefill
            out["ttft_ms"] = round((raw["t_finish"] - raw["t0"]) * 1000, 2)
            out["ended_at_once"] = True
            prompt = raw.get("prompt_tokens")
            if isinstance(prompt, int) and prompt > 0 and out["ttft_ms"]:
                out["prefill_tok_s"] = round(prompt / (out["ttft_ms"] / 1000), 1)
        return out
    out["ttft_ms"] = round((times[0] - raw["t0"]) * 1000, 2)
    decode = times[-1] - times[0]
    if n > 1 and decode > 0:
        out["decode_tok_s"] = round((n - 1) / decode, 3)
        out["tpot_ms"] = round(decode / (n - 1) * 1000, 3)
    gaps = [(b - a) * 1000 for a, b in zip(times, times[1:])]
    if gaps:
        out["itl_p50_ms"] = round(percentile(gaps, 50), 3)
        out["itl_p95_ms"] = round(percentile(gaps, 95), 3)
    prompt = raw.get("prompt_tokens")
    if isinstance(prompt, int) and prompt > 0 and out["ttft_ms"]:
        out["prefill_tok_s"] = round(prompt / (out["ttft_ms"] / 1000), 1)
    return out


def _body(model: str | None, text: str, max_tokens: int, extras: dict[str, Any]) -> dict[str, Any]:
    b: dict[str, Any] = {"messages": [{"role": "user", "content": text}], "stream": True, "temperature": 0,
                         "seed": 0, "max_tokens": max_tokens, **extras}
    if model:
        b["model"] = model
    return b


def _prompt(depth: int, seed: int) -> str:
    # the nonce goes first: no two requests share a prefix, so no prefix cache can serve one
    head = f"[{uuid.uuid4().hex}]"
    tail = "Now continue counting in English words: one two three"
    return f"{head} {filler(depth, seed)}\n{tail}" if depth > 0 else f"{head} {tail}"


def _url_model(running: RunningLane) -> tuple[str, str | None]:
    spec = running.spec
    return f"{(spec.base_url or '').rstrip('/')}/chat/completions", spec.model or running.served_model


def _extras(extras: dict[str, Any] | None) -> dict[str, Any]:
    return {"ignore_eos": True, "stream_options": {"include_usage": True}} if extras is None else extras


def depth_point(http: httpx.Client, running: RunningLane, depth: int, *, runs: int, max_tokens: int,
                extras: dict[str, Any] | None = None, deadline: float | None = None) -> dict[str, Any]:
    """The median figures of ``runs`` cache-busted requests at ``depth``."""
    url, model = _url_model(running)
    samples = [figures(stream(http, url, _body(model, _prompt(depth, i), max_tokens, _extras(extras)), deadline))
               for i in range(runs)]
    return {"depth": depth, **_median(samples), "samples": samples}


def depth_summary(points: list[dict[str, Any]]) -> dict[str, Any]:
    """The depth sweep's result from its points: the prefill rate fitted across depths (over
    prompt tokens, or over filler words when the server counts none) and the cache hits."""
    timed = [p for p in points if p.get("ttft_ms")]
    by_tokens = bool(timed) and all(isinstance(p.get("prompt_tokens"), (int, float)) for p in timed)
    fit = fit_rate([((p["prompt_tokens"] if by_tokens else p["depth"]), p["ttft_ms"] / 1000) for p in timed])
    out: dict[str, Any] = {
        "points": points, "prefill_tok_s_fit": None if fit is None else round(fit, 1),
        "cache_hits": sum(1 for p in points for s in p["samples"] if (s.get("cached_tokens") or 0) > CACHE_HEAD_TOKENS),
        "cached_tokens_max": max((s["cached_tokens"] for p in points for s in p["samples"]
                                  if isinstance(s.get("cached_tokens"), int)), default=None)}
    if fit is not None and not by_tokens:
        out["fit_over"] = "filler words: the server counted no prompt tokens (about one token per word)"
    return out


def depth_sweep(running: RunningLane, depths: list[int], *, max_tokens: int = 32, runs: int = 2,
                extras: dict[str, Any] | None = None, timeout_s: float = 600.0) -> dict[str, Any]:
    """Per depth: the median figures of ``runs`` cache-busted requests (no budget)."""
    with lane_http(running.spec, timeout=timeout_s) as http:
        points = [depth_point(http, running, d, runs=runs, max_tokens=max_tokens, extras=extras) for d in depths]
    return depth_summary(points)


def concurrency_point(http: httpx.Client, running: RunningLane, n: int, *, max_tokens: int,
                      extras: dict[str, Any] | None = None, deadline: float | None = None) -> dict[str, Any]:
    """N cache-busted streams at once over one client (httpx's pool is thread-safe, and a
    client costs ~0.2 s to make); per-stream and aggregate decode tok/s. Raises
    :class:`Cut` when a stream was still running at ``deadline``."""
    url, model = _url_model(running)
    extra = (n - 1) // STREAMS_PER_CLIENT  # httpx pools 100 connections: more streams, more clients
    with contextlib.ExitStack() as stack:
        clients = [http] + [stack.enter_context(lane_http(running.spec, timeout=http.timeout.read or 600.0))
                            for _ in range(extra)]
        return _concurrency_point(clients, url, model, n, max_tokens, extras, deadline)


def _concurrency_point(clients: list[httpx.Client], url: str, model: str | None, n: int, max_tokens: int,
                       extras: dict[str, Any] | None, deadline: float | None) -> dict[str, Any]:
    raws: list[dict[str, Any] | None] = [None] * n
    errors: list[str] = []
    cut: list[str] = []
    gate = threading.Barrier(n)  # clients made first, then every stream starts together

    def one(i: int) -> None:
        try:
            body = _body(model, _prompt(0, i), max_tokens, _extras(extras))
            gate.wait(timeout=30)
            raws[i] = stream(clients[i // STREAMS_PER_CLIENT], url, body, deadline)
        except Cut as exc:
            cut.append(str(exc))
        except Exception as exc:  # noqa: BLE001 - reported in the point
            errors.append(scrub(f"{type(exc).__name__}: {exc}"))

    # daemon: a Ctrl-C while they stream must not wait for them (each ends with its request)
    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if cut:
        raise Cut(cut[0])
    done = [r for r in raws if r is not None and len(r["times"]) > 1]
    per = [f["decode_tok_s"] for f in map(figures, done) if f["decode_tok_s"]]
    agg = None
    if done:
        span = max(r["times"][-1] for r in done) - min(r["times"][0] for r in done)
        generated = sum(r["tokens"] - 1 for r in done)
        agg = round(generated / span, 3) if span > 0 else None
    return {"concurrency": n, "streams_ok": len(done), "per_stream_tok_s": (
        round(statistics.median(per), 3) if per else None), "aggregate_tok_s": agg,
        "ttft_ms_p50": _round(percentile([figures(r)["ttft_ms"] for r in done], 50)), "errors": errors}


def concurrency_sweep(running: RunningLane, levels: list[int], *, max_tokens: int = 64,
                      extras: dict[str, Any] | None = None, timeout_s: float = 600.0) -> dict[str, Any]:
    """Per level N: N cache-busted streams at once (no budget)."""
    with lane_http(running.spec, timeout=timeout_s) as http:
        return {"points": [concurrency_point(http, running, n, max_tokens=max_tokens, extras=extras)
                           for n in levels]}


def prefix_cache_hit_rate(running: RunningLane, http: httpx.Client | None = None) -> float | None:
    """The server's own prefix-cache hit rate, where its metrics give it (else None)."""
    if http is None:
        with lane_http(running.spec, timeout=10) as own_http:
            return prefix_cache_hit_rate(running, own_http)
    metrics = running.kind.server_metrics(running.spec, http)
    if not metrics:
        return None
    own = getattr(running.kind, "prefix_cache_hit_rate", None)
    if own is not None:
        v = own(metrics)
        if v is not None:
            return v
    hits, queries = metrics.get("vllm:prefix_cache_hits_total"), metrics.get("vllm:prefix_cache_queries_total")
    if hits is not None and queries:
        return hits / queries
    return None


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def _median(samples: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("prompt_tokens", "ttft_ms", "prefill_tok_s", "decode_tok_s", "tpot_ms", "itl_p50_ms", "itl_p95_ms"):
        vals = [s[key] for s in samples if isinstance(s.get(key), (int, float))]
        out[key] = _round(statistics.median(vals)) if vals else None
    return out


# --------------------------------------------------------------------------- the budgeted plan


def _context(running: RunningLane, http: httpx.Client) -> int | None:
    """The lane's context window: its spec, else what the server says (None = unknown)."""
    if running.spec.context_length:
        return running.spec.context_length
    try:
        return running.kind.context_length(running.spec, http)
    except Exception:  # noqa: BLE001 - unknown: no depth is skipped for it
        return None


def predict_s(point: tuple[str, int], *, ttft_s: float, decode_tok_s: float | None, prefill_tok_s: float | None,
              aggregate_tok_s: float | None, runs: int, max_tokens: int) -> float:
    """Seconds a sweep point is expected to take (pure): 0 while nothing is known yet."""
    what, x = point
    if not decode_tok_s:
        return 0.0
    if what == "depth":
        prefill = prefill_tok_s or decode_tok_s * PREFILL_OVER_DECODE
        return runs * (ttft_s + x / prefill + max_tokens / decode_tok_s)
    # N streams: as if served one after another until a level measures how they share
    return x * ttft_s + x * max_tokens / (aggregate_tok_s or decode_tok_s)


def _level_one(d0: dict[str, Any]) -> dict[str, Any]:
    """Concurrency 1 from the depth-0 point: the same request (one stream, no filler)."""
    return {"concurrency": 1, "streams_ok": len(d0["samples"]), "per_stream_tok_s": d0["decode_tok_s"],
            "aggregate_tok_s": d0["decode_tok_s"], "ttft_ms_p50": d0["ttft_ms"], "errors": [], "from": "depth 0"}


def _predict(point: tuple[str, int], d_points: list[dict[str, Any]], c_points: list[dict[str, Any]],
             base_ttft_ms: float | None, base_tok_s: float | None, runs: int, max_tokens: int) -> float:
    """:func:`predict_s` from the single-stream figures and the points measured so far."""
    decode = [p["decode_tok_s"] for p in d_points if p.get("decode_tok_s")]
    ttft_ms = base_ttft_ms or next((p["ttft_ms"] for p in d_points if p.get("ttft_ms")), 0.0)
    fit = depth_summary(d_points)["prefill_tok_s_fit"] if len(d_points) > 1 else None
    aggs = [p["aggregate_tok_s"] for p in c_points if p.get("aggregate_tok_s")]
    return predict_s(point, ttft_s=ttft_ms / 1000, decode_tok_s=base_tok_s or (min(decode) if decode else None),
                     prefill_tok_s=fit, aggregate_tok_s=max(aggs) if aggs else None, runs=runs,
                     max_tokens=max_tokens)


def sweep(running: RunningLane, depths: list[int] | None, levels: list[int] | None, *,
          budget_s: float | None = None, base_ttft_ms: float | None = None, base_tok_s: float | None = None,
          runs: int = 2, max_tokens: int = 32, level_max_tokens: int = 64, extras: dict[str, Any] | None = None,
          timeout_s: float = 600.0) -> dict[str, Any]:
    """Both sweeps (each when asked), plus the prefix-cache hit rate; never raises for a
    server problem. The two sweeps take turns, each in rising order; with ``budget_s`` a
    point runs only when its predicted time (from the single-stream figures ``base_*`` and
    the points measured so far) fits in what is left, and one still running at the end is cut."""
    t0 = time.perf_counter()
    deadline = t0 + budget_s if budget_s else None
    depths, levels = sorted(set(depths or [])), sorted(set(levels or []))
    d_points: list[dict[str, Any]] = []
    c_points: list[dict[str, Any]] = []
    skipped: dict[str, list[dict[str, Any]]] = {"depth": [], "concurrency": []}
    out: dict[str, Any] = {}

    def skip(point: tuple[str, int], why: str) -> None:
        skipped[point[0]].append({point[0]: point[1], "why": why})

    queues: dict[str, list[int]] = {"depth": list(depths), "concurrency": list(levels)}
    try:
        with lane_http(running.spec, timeout=timeout_s) as http:
            ctx = _context(running, http) if depths else None
            for d in depths:
                if ctx and d + max_tokens + CONTEXT_MARGIN > ctx:
                    queues["depth"].remove(d)
                    skip(("depth", d), f"deeper than the lane's {ctx}-token context holds")
            while queues["depth"] or queues["concurrency"]:
                # take turns (the sweep with fewer points measured goes next), each in rising order:
                # a budget then buys the start of both curves rather than all of one
                what = min((w for w in queues if queues[w]), key=lambda w: len(d_points if w == "depth" else c_points))
                point = (what, queues[what][0])
                cost = _predict(point, d_points, c_points, base_ttft_ms, base_tok_s, runs,
                                max_tokens if what == "depth" else level_max_tokens)
                left = None if deadline is None else deadline - time.perf_counter()
                if left is not None and cost > left:  # costs only grow along a sweep: the rest cannot fit either
                    for x in queues[what]:
                        skip((what, x), f"predicted {cost:.1f} s or more, over the {max(left, 0):.1f} s left of the "
                                        f"{budget_s:g} s sweep budget")
                    queues[what] = []
                    continue
                queues[what].pop(0)
                d0 = next((p for p in d_points if p["depth"] == 0 and p.get("decode_tok_s")), None)
                if point == ("concurrency", 1) and d0 and max_tokens == level_max_tokens:
                    c_points.append(_level_one(d0))  # one stream at depth 0 is that request: not sent twice
                    continue
                try:
                    if what == "depth":
                        d_points.append(depth_point(http, running, point[1], runs=runs, max_tokens=max_tokens,
                                                    extras=extras, deadline=deadline))
                    else:
                        c_points.append(concurrency_point(http, running, point[1], max_tokens=level_max_tokens,
                                                          extras=extras, deadline=deadline))
                except Cut as exc:
                    skip(point, f"cut at the end of the {budget_s:g} s sweep budget ({exc})")
                    for w, xs in queues.items():
                        for x in xs:
                            skip((w, x), f"the {budget_s:g} s sweep budget was spent")
                        xs.clear()
                except (httpx.HTTPError, RuntimeError) as exc:
                    skip(point, f"failed: {scrub(f'{type(exc).__name__}: {exc}')}")
                    if what == "depth":  # deeper ones would fail the same way (a context limit)
                        for x in queues["depth"]:
                            skip(("depth", x), f"a shallower depth ({point[1]}) failed")
                        queues["depth"] = []
            out["prefix_cache_hit_rate"] = prefix_cache_hit_rate(running, http)
    except (httpx.HTTPError, RuntimeError) as exc:
        out["error"] = scrub(f"{type(exc).__name__}: {exc}")
        get_logger().warning("throughput.sweep_failed", lane=running.spec.name, error=out["error"])
    if depths:
        out["depth"] = {**depth_summary(sorted(d_points, key=lambda p: p["depth"])),
                        **({"skipped": skipped["depth"]} if skipped["depth"] else {})}
    if levels:
        out["concurrency"] = {"points": sorted(c_points, key=lambda p: p["concurrency"]),
                              **({"skipped": skipped["concurrency"]} if skipped["concurrency"] else {})}
    if budget_s:
        out["budget_s"] = budget_s
    out["elapsed_s"] = round(time.perf_counter() - t0, 2)
    return out
