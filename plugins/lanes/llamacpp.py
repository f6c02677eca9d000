"""``llamacpp``: llama.cpp's ``llama-server``.

Ready = ``GET /health`` 200; 503 means the model is still loading. Context length from
``/props`` (``n_ctx``), server metrics from ``/metrics`` when started with ``--metrics``
(responses also carry ``timings``, which the throughput probe reads).

Managed without a ``start`` command: ``options.model_path`` (a GGUF) builds
``llama-server -m PATH --host 127.0.0.1 --port P --jinja --metrics [-a MODEL] [-c N] ARGS``;
``options.binary`` (default ``llama-server``) and ``options.args`` (a list) adjust it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hbench.lanes import LaneKind, server_root
from hbench.limits import response_json
from hbench.models import LaneSpec

if TYPE_CHECKING:  # httpx is imported where it is used: listing plugins must stay fast
    import httpx


def _message(r: httpx.Response) -> str:
    try:
        body: Any = response_json(r)
    except ValueError:  # not JSON, or nested too deeply (hbench.limits)
        return r.text[:80]
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message", ""))
    return str(body)[:80]


class LlamaCppKind(LaneKind):
    name = "llamacpp"
    description = "llama.cpp llama-server; ready when /health is 200 (503 = loading)"
    metrics_paths = ("/metrics",)
    tool_call_fix = (
        "start llama-server with --jinja (newer builds default to it) and a chat template that "
        "supports tools (--chat-template-file if the GGUF's own template lacks them)"
    )

    def build_start(self, lane: LaneSpec) -> list[str] | None:
        path = lane.options.get("model_path")
        if not path:
            return None
        cmd = [str(lane.options.get("binary", "llama-server")), "-m", str(path),
               "--host", "127.0.0.1", "--port", "{port}", "--jinja", "--metrics"]
        if lane.model:
            cmd += ["-a", lane.model]
        if lane.context_length:
            cmd += ["-c", str(lane.context_length)]
        return cmd + [str(a) for a in lane.options.get("args", [])]

    def ready(self, lane: LaneSpec, http: httpx.Client) -> tuple[bool, str]:
        import httpx

        try:
            r = http.get(f"{server_root(lane.base_url or '')}/health")
        except httpx.HTTPError as exc:
            return False, f"not listening yet ({type(exc).__name__})"
        if r.status_code == 200:
            return True, "/health -> 200"
        if r.status_code == 503:
            return False, f"loading model (/health -> 503: {_message(r)})"
        return False, f"/health -> {r.status_code}"

    def context_length(self, lane: LaneSpec, http: httpx.Client) -> int | None:
        import httpx

        try:
            props = response_json(http.get(f"{server_root(lane.base_url or '')}/props"))
        except (httpx.HTTPError, ValueError):
            return super().context_length(lane, http)
        if isinstance(props, dict):
            for v in ((props.get("default_generation_settings") or {}).get("n_ctx"), props.get("n_ctx")):
                if isinstance(v, int) and v > 0:
                    return v
        return super().context_length(lane, http)


KIND = LlamaCppKind()
