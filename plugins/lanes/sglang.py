"""``sglang``: SGLang's ``python -m sglang.launch_server`` (default port 30000).

Readiness: the port refuses connections while the model loads, then ``GET /health``
answers 200 (503 while it warms up or when the scheduler is unhealthy). SGLang's own
``/health_generate`` runs a real generation; hbench's generation canary (a 1-token chat
completion, :func:`hbench.lanes.prove_generation`) does the same for every kind.
Context length: ``max_model_len`` in ``/v1/models`` when given, else
``/get_model_info``'s ``max_context_length`` / ``context_length``. Metrics only with
``--enable-metrics``: ``sglang:prompt_tokens_total``, ``sglang:generation_tokens_total``,
``sglang:time_to_first_token_seconds``, ``sglang:inter_token_latency_seconds`` (older
builds ``sglang:time_per_output_token_seconds``), ``sglang:cache_hit_rate`` (a gauge),
``sglang:cached_tokens_total``.

Managed without a ``start`` command: ``options.model_path`` builds ``python -m
sglang.launch_server --model-path M --host 127.0.0.1 --port P --enable-metrics
--tool-call-parser PARSER [--served-model-name MODEL] [--context-length N]
[--mem-fraction-static F] ARGS`` (``options.tool_call_parser`` default ``qwen25``;
``options.python`` default ``python3``).

Tested against an imitation (tests/lane_imitations.py ``--kind sglang``) until a real one
can run here: SGLang needs a GPU.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hbench.lanes import LaneKind, server_root
from hbench.limits import response_json
from hbench.models import LaneSpec

if TYPE_CHECKING:  # httpx is imported where it is used: listing plugins must stay fast
    import httpx

#: old SGLang metric names -> current ones
_ALIASES = {
    "sglang:time_per_output_token_seconds_sum": "sglang:inter_token_latency_seconds_sum",
    "sglang:time_per_output_token_seconds_count": "sglang:inter_token_latency_seconds_count",
}


class SGLangKind(LaneKind):
    name = "sglang"
    description = "SGLang; connection refused while loading, then /health 200"
    metrics_paths = ("/metrics",)
    metric_aliases = _ALIASES
    decode_rate_counters = (("sglang:inter_token_latency_seconds_count", "sglang:inter_token_latency_seconds_sum"),)
    tool_call_fix = (
        "start SGLang with --tool-call-parser matching the model (qwen25 for Qwen2.5/Qwen3, llama3, "
        "mistral, deepseekv3, gpt-oss)"
    )

    def build_start(self, lane: LaneSpec) -> list[str] | None:
        model = lane.options.get("model_path")
        if not model:
            return None
        cmd = [str(lane.options.get("python", "python3")), "-m", "sglang.launch_server", "--model-path", str(model),
               "--host", "127.0.0.1", "--port", "{port}", "--enable-metrics",
               "--tool-call-parser", str(lane.options.get("tool_call_parser", "qwen25"))]
        if lane.model:
            cmd += ["--served-model-name", lane.model]
        if lane.context_length:
            cmd += ["--context-length", str(lane.context_length)]
        if lane.options.get("mem_fraction_static") is not None:
            cmd += ["--mem-fraction-static", str(lane.options["mem_fraction_static"])]
        return cmd + [str(a) for a in lane.options.get("args", [])]

    def ready(self, lane: LaneSpec, http: httpx.Client) -> tuple[bool, str]:
        import httpx

        try:
            r = http.get(f"{server_root(lane.base_url or '')}/health")
        except httpx.ConnectError:
            return False, "connection refused (SGLang is loading the model)"
        except httpx.HTTPError as exc:
            return False, f"not reachable ({type(exc).__name__})"
        if r.status_code == 200:
            return True, "/health -> 200"
        if r.status_code == 503:
            return False, "/health -> 503 (warming up, or the scheduler is not healthy)"
        return False, f"/health -> {r.status_code}"

    def context_length(self, lane: LaneSpec, http: httpx.Client) -> int | None:
        n = super().context_length(lane, http)
        if n:
            return n
        try:
            info = response_json(http.get(f"{server_root(lane.base_url or '')}/get_model_info"))
        except Exception:  # noqa: BLE001 - an odd server is "unknown", never a crash
            return None
        if isinstance(info, dict):
            for key in ("max_context_length", "context_length", "max_total_num_tokens"):
                v = info.get(key)
                if isinstance(v, int) and not isinstance(v, bool) and v > 0:
                    return v
        return None

    def prefix_cache_hit_rate(self, metrics: dict[str, float]) -> float | None:
        """SGLang's own ``sglang:cache_hit_rate`` gauge (0-1), when it is published."""
        v = metrics.get("sglang:cache_hit_rate")
        return float(v) if isinstance(v, (int, float)) else None
