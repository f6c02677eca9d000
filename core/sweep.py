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
per request (``cached_tokens``) so a hit would show. The server's own prefix-cache hit
rate (SGLang ``sglang:cache_hit_rate``; vLLM ``prefix_cache_hits/queries`` deltas) is
reported when its metrics give it.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from typing import Any

import httpx

from hbench.lanes import RunningLane, lane_http
from hbench.logging import get_logger, scrub
from hbench.scoring import percentile
from hbench.sse import json_chunks

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


def stream(http: httpx.Client, url: str, body: dict[str, Any]) -> dict[str, Any]:
    """One streamed request: per-token timestamps, usage, timings, cached tokens."""
    t0 = time.perf_counter()
    times: list[float] = []
    usage: dict[str, Any] = {}
    timings: dict[str, Any] = {}
    with http.stream("POST", url, json=body) as r:
        if r.status_code >= 400:
            raise RuntimeError(f"HTTP {r.status_code}: {r.read().decode(errors='replace')[:200]}")
        for obj in json_chunks(r.iter_bytes()):  # hbench.sse: the one SSE reader
            if isinstance(obj.get("usage"), dict):
                usage = obj["usage"]
            if isinstance(obj.get("timings"), dict):
                timings = obj["timings"]
            for choice in obj.get("choices") or []:
                d = choice.get("delta") or {}
                if d.get("content") or d.get("reasoning_content") or d.get("reasoning") or d.get("tool_calls"):
                    times.append(time.perf_counter())
    tokens = usage.get("completion_tokens") if isinstance(usage.get("completion_tokens"), int) else None
    tokens = tokens or timings.get("predicted_n") or len(times)
    prompt = usage.get("prompt_tokens") if isinstance(usage.get("prompt_tokens"), int) else timings.get("prompt_n")
    details = usage.get("prompt_tokens_details") if isinstance(usage.get("prompt_tokens_details"), dict) else {}
    cached = details.get("cached_tokens", timings.get("cache_n"))
    return {"t0": t0, "times": times, "tokens": int(tokens), "prompt_tokens": prompt,
            "cached_tokens": cached if isinstance(cached, int) else None}


def figures(raw: dict[str, Any]) -> dict[str, Any]:
    """TTFT, decode tok/s, TPOT and ITL p50/p95 of one request (pure)."""
    times, n = raw["times"], raw["tokens"]
    out: dict[str, Any] = {"tokens": n, "prompt_tokens": raw.get("prompt_tokens"),
                           "cached_tokens": raw.get("cached_tokens"), "ttft_ms": None, "decode_tok_s": None,
                           "tpot_ms": None, "itl_p50_ms": None, "itl_p95_ms": None}
    if not times:
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


def depth_sweep(running: RunningLane, depths: list[int], *, max_tokens: int = 32, runs: int = 2,
                extras: dict[str, Any] | None = None, timeout_s: float = 600.0) -> dict[str, Any]:
    """Per depth: the median figures of ``runs`` cache-busted requests."""
    spec = running.spec
    url = f"{(spec.base_url or '').rstrip('/')}/chat/completions"
    model = spec.model or running.served_model
    extras = {"ignore_eos": True, "stream_options": {"include_usage": True}} if extras is None else extras
    points: list[dict[str, Any]] = []
    with lane_http(spec, timeout=timeout_s) as http:
        for d in depths:
            samples = [figures(stream(http, url, _body(model, _prompt(d, i), max_tokens, extras)))
                       for i in range(runs)]
            points.append({"depth": d, **_median(samples), "samples": samples})
    fit = fit_rate([(p.get("prompt_tokens"), (p["ttft_ms"] or 0) / 1000) for p in points if p.get("ttft_ms")])
    return {"points": points, "prefill_tok_s_fit": None if fit is None else round(fit, 1),
            "cache_hits": sum(1 for p in points for s in p["samples"] if (s.get("cached_tokens") or 0) > 0)}


def concurrency_sweep(running: RunningLane, levels: list[int], *, max_tokens: int = 64,
                      extras: dict[str, Any] | None = None, timeout_s: float = 600.0) -> dict[str, Any]:
    """Per level N: N cache-busted streams at once; per-stream and aggregate decode tok/s."""
    spec = running.spec
    url = f"{(spec.base_url or '').rstrip('/')}/chat/completions"
    model = spec.model or running.served_model
    extras = {"ignore_eos": True, "stream_options": {"include_usage": True}} if extras is None else extras
    points = []
    for n in levels:
        raws: list[dict[str, Any] | None] = [None] * n
        errors: list[str] = []
        gate = threading.Barrier(n)  # clients made first, then every stream starts together

        def one(i: int) -> None:
            try:
                with lane_http(spec, timeout=timeout_s) as http:
                    body = _body(model, _prompt(0, i), max_tokens, extras)
                    gate.wait(timeout=30)
                    raws[i] = stream(http, url, body)
            except Exception as exc:  # noqa: BLE001 - reported in the point
                errors.append(scrub(f"{type(exc).__name__}: {exc}"))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        done = [r for r in raws if r is not None and len(r["times"]) > 1]
        per = [f["decode_tok_s"] for f in map(figures, done) if f["decode_tok_s"]]
        agg = None
        if done:
            span = max(r["times"][-1] for r in done) - min(r["times"][0] for r in done)
            generated = sum(r["tokens"] - 1 for r in done)
            agg = round(generated / span, 3) if span > 0 else None
        points.append({"concurrency": n, "streams_ok": len(done), "per_stream_tok_s": (
            round(statistics.median(per), 3) if per else None), "aggregate_tok_s": agg,
            "ttft_ms_p50": _round(percentile([figures(r)["ttft_ms"] for r in done], 50)),
            "errors": errors})
    return {"points": points}


def prefix_cache_hit_rate(running: RunningLane) -> float | None:
    """The server's own prefix-cache hit rate, where its metrics give it (else None)."""
    with lane_http(running.spec, timeout=10) as http:
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


def sweep(running: RunningLane, depths: list[int] | None, levels: list[int] | None, **kw: Any) -> dict[str, Any]:
    """Both sweeps (each when asked), plus the prefix-cache hit rate; never raises for a server problem."""
    out: dict[str, Any] = {}
    try:
        if depths:
            out["depth"] = depth_sweep(running, depths, **kw)
        if levels:
            out["concurrency"] = concurrency_sweep(running, levels)
        out["prefix_cache_hit_rate"] = prefix_cache_hit_rate(running)
    except (httpx.HTTPError, RuntimeError) as exc:
        out["error"] = scrub(f"{type(exc).__name__}: {exc}")
        get_logger().warning("throughput.sweep_failed", lane=running.spec.name, error=out["error"])
    return out
