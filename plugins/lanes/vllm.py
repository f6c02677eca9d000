"""``vllm``: ``vllm serve``.

While the model loads the port refuses connections; then ``GET /health`` is 200 (503
means the engine died). Context length is ``max_model_len`` in ``/v1/models``. Metrics
at ``/metrics`` by name, old and new (``gpu_cache_usage_perc`` -> ``kv_cache_usage_perc``,
``time_per_output_token_seconds`` -> ``inter_token_latency_seconds``).

Managed without a ``start`` command: ``options.serve`` (the model to load) builds
``vllm serve MODEL --host 127.0.0.1 --port P --enable-auto-tool-choice --tool-call-parser
PARSER --gpu-memory-utilization U [--served-model-name MODEL] [--max-model-len N] ARGS``
(``options.tool_call_parser`` default ``hermes``, ``options.gpu_memory_utilization``
default 0.8: GB10 boxes abort at 0.9, see LANES.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hbench.lanes import LaneKind, server_root
from hbench.models import LaneSpec

if TYPE_CHECKING:  # httpx is imported where it is used: listing plugins must stay fast
    import httpx


#: old vLLM metric sample names -> the current name (docs/LANES.md)
VLLM_METRIC_ALIASES: dict[str, str] = {
    "vllm:gpu_cache_usage_perc": "vllm:kv_cache_usage_perc",
    "vllm:time_per_output_token_seconds_sum": "vllm:inter_token_latency_seconds_sum",
    "vllm:time_per_output_token_seconds_count": "vllm:inter_token_latency_seconds_count",
}
#: the engine's decode rate: inter-token gaps over the seconds they took
VLLM_DECODE_COUNTERS = (("vllm:inter_token_latency_seconds_count", "vllm:inter_token_latency_seconds_sum"),)


class VLLMKind(LaneKind):
    name = "vllm"
    description = "vLLM; connection refused while loading, then /health 200"
    metrics_paths = ("/metrics",)
    metric_aliases = VLLM_METRIC_ALIASES
    decode_rate_counters = VLLM_DECODE_COUNTERS
    tool_call_fix = (
        "vLLM needs --enable-auto-tool-choice --tool-call-parser hermes (the parser must match "
        "the model: hermes for Hermes/Qwen, llama3_json, mistral, openai for gpt-oss)"
    )
    needs_auto_tool_choice = True  # a vLLM engine: tools are refused until auto tool choice is on

    def build_start(self, lane: LaneSpec) -> list[str] | None:
        model = lane.options.get("serve")
        if not model:
            return None
        cmd = [str(lane.options.get("binary", "vllm")), "serve", str(model),
               "--host", "127.0.0.1", "--port", "{port}",
               "--enable-auto-tool-choice", "--tool-call-parser", str(lane.options.get("tool_call_parser", "hermes")),
               "--gpu-memory-utilization", str(lane.options.get("gpu_memory_utilization", 0.8))]
        if lane.model:
            cmd += ["--served-model-name", lane.model]
        if lane.context_length:
            cmd += ["--max-model-len", str(lane.context_length)]
        return cmd + [str(a) for a in lane.options.get("args", [])]

    def ready(self, lane: LaneSpec, http: httpx.Client) -> tuple[bool, str]:
        import httpx

        try:
            r = http.get(f"{server_root(lane.base_url or '')}/health")
        except httpx.ConnectError:
            return False, "connection refused (vLLM is loading the model)"
        except httpx.HTTPError as exc:
            return False, f"not reachable ({type(exc).__name__})"
        if r.status_code == 200:
            return True, "/health -> 200"
        if r.status_code == 503:
            return False, "/health -> 503 (engine not healthy)"
        return False, f"/health -> {r.status_code}"
