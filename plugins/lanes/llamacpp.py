"""``llamacpp``: llama.cpp's ``llama-server``.

Ready = ``GET /health`` 200; 503 means the model is still loading. Context length from
``/props`` (``n_ctx``), server metrics from ``/metrics`` when started with ``--metrics``
(responses also carry ``timings``, which the throughput probe reads).

Managed without a ``start`` command: ``options.model_path`` (a GGUF) builds
``llama-server -m PATH --host 127.0.0.1 --port P --jinja --metrics [-a MODEL] [-c N] ARGS``;
``options.binary`` and ``options.args`` (a list) adjust it. ``model_path = "@embedded"``
is the embedded lane's own GGUF (Gemma 3 270M Q4_K_M, assembled once into the user cache),
served as ``gemma-3-270m-q4_k_m``: the same model on two stacks (docs/TWO-STACKS.md).

The binary, when ``options.binary`` is not given: ``$HBENCH_LLAMA_SERVER``, else the one
``.ci/build-llama-server.sh`` cached for the installed llama-cpp-python
(``~/.cache/hbench/llama-server/<version>/llama-server``), else ``llama-server`` on PATH
(:func:`find_binary`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from hbench.errors import BadInput
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


#: ``options.model_path`` naming the embedded lane's GGUF
EMBEDDED_GGUF = "@embedded"
BINARY_ENV = "HBENCH_LLAMA_SERVER"


def cached_binary() -> Path | None:
    """The llama-server .ci/build-llama-server.sh built for the installed llama-cpp-python."""
    from importlib import metadata

    import platformdirs

    try:
        ver = metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:
        return None
    path = Path(platformdirs.user_cache_dir("hbench")) / "llama-server" / ver / "llama-server"
    return path if path.is_file() and os.access(path, os.X_OK) else None


def find_binary() -> tuple[str | None, str]:
    """(path to llama-server or None, where it was found / why there is none)."""
    env = os.environ.get(BINARY_ENV)
    if env:
        if Path(env).is_file() and os.access(env, os.X_OK):
            return env, f"${BINARY_ENV}"
        return None, f"${BINARY_ENV}={env} is not an executable file"
    cached = cached_binary()
    if cached:
        return str(cached), "the cached build (.ci/build-llama-server.sh)"
    found = shutil.which("llama-server")
    if found:
        return found, "PATH"
    return None, ("no llama-server: set $HBENCH_LLAMA_SERVER, put llama-server on PATH, or build it with "
                  "bash .ci/build-llama-server.sh (llama.cpp from the llama-cpp-python sdist, ~5 min on 2 cores)")


class LlamaCppKind(LaneKind):
    name = "llamacpp"
    description = "llama.cpp llama-server; ready when /health is 200 (503 = loading)"
    metrics_paths = ("/metrics",)
    #: tokens generated over the seconds spent generating them
    decode_rate_counters = (("llamacpp:tokens_predicted_total", "llamacpp:tokens_predicted_seconds_total"),)
    tool_call_fix = (
        "start llama-server with --jinja (newer builds default to it) and a chat template that "
        "supports tools (--chat-template-file if the GGUF's own template lacks them)"
    )

    def build_start(self, lane: LaneSpec) -> list[str] | None:
        path = lane.options.get("model_path")
        if not path:
            return None
        binary = lane.options.get("binary") or find_binary()[0] or "llama-server"
        path = str(Path(str(path)).expanduser()) if path != EMBEDDED_GGUF else path
        cmd = [str(binary), "-m", path,
               "--host", "127.0.0.1", "--port", "{port}", "--jinja", "--metrics"]
        if lane.model:
            cmd += ["-a", lane.model]
        if lane.context_length:
            cmd += ["-c", str(lane.context_length)]
        return cmd + [str(a) for a in lane.options.get("args", [])]

    def prepare(self, lane: LaneSpec, out_dir: Path) -> LaneSpec:
        """``model_path = "@embedded"``: assemble the embedded lane's GGUF (once) and serve
        it under the embedded lane's model id, so both stacks answer to the same name."""
        if lane.start is None and lane.options.get("model_path") == EMBEDDED_GGUF:
            from hbench.plugins.lanes import embedded

            if embedded.GGUF_MODULE in embedded.missing_modules():
                raise BadInput(f"lanes.{lane.name}.options.model_path = {EMBEDDED_GGUF!r} needs the model package "
                               f"{embedded.GGUF_PACKAGE}: " + embedded.INSTALL_HINT)
            gguf = embedded.ensure_gguf()
            lane = attrs.evolve(lane, model=lane.model or embedded.MODEL_ALIAS,
                                options={**lane.options, "model_path": str(gguf)})
        return super().prepare(lane, out_dir)

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

    def prefix_cache_hit_rate(self, metrics: dict[str, float]) -> float | None:
        """Share of prompt tokens served from the prompt cache since the server started:
        ``prompt_tokens_cached_total`` over it plus ``prompt_tokens_total`` (the evaluated ones)."""
        cached, evaluated = metrics.get("llamacpp:prompt_tokens_cached_total"), metrics.get("llamacpp:prompt_tokens_total")
        if cached is None or evaluated is None or cached + evaluated <= 0:
            return None
        return cached / (cached + evaluated)

    def tool_call_hint(self, lane: LaneSpec, http: httpx.Client) -> str | None:
        """Read ``/props``: a chat template without tool support (``chat_template_caps``
        says so, or the template never mentions tools) explains answers in prose."""
        props = response_json(http.get(f"{server_root(lane.base_url or '')}/props"))
        if not isinstance(props, dict):
            return None
        template = props.get("chat_template") if isinstance(props.get("chat_template"), str) else ""
        caps = props.get("chat_template_caps") if isinstance(props.get("chat_template_caps"), dict) else {}
        supports = caps.get("supports_tool_calls", caps.get("supports_tools"))
        if supports is False or (supports is None and template and "tool" not in template):
            said = ("/props chat_template_caps.supports_tool_calls is false" if supports is False
                    else "the /props chat_template never mentions tools")
            return (f"the chat template llama-server applies has no tool-call support ({said}; a GGUF without "
                    "its own template gets a generic one), so the tools reach the model as plain text and it "
                    "answers in prose: no flag or tool_choice changes that. Pass --chat-template-file with a "
                    "template in the tool-call format this model was trained on (options.args), or serve it "
                    "where calls are grammar-constrained (kind embedded, chatml-function-calling)")
        return None

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
