"""``nim``: NVIDIA NIM for LLMs (a vLLM or TRT-LLM engine in a container).

``/v1/health/live`` is 200 before the model loads, so readiness is
``/v1/health/ready`` (503 while loading). Metrics at ``/v1/metrics`` (vLLM names), else
``/metrics``.

Managed without a ``start`` command: ``options.image`` builds an attached
``docker run --rm --name hbench-LANE --gpus all -e NGC_API_KEY -p 127.0.0.1:P:8000
[-v CACHE:/opt/nim/.cache] -e NIM_ENABLE_AUTO_TOOL_CHOICE=1 -e NIM_TOOL_CALL_PARSER=hermes
ARGS IMAGE``, and the lane is stopped with ``docker stop`` (the server is not our child
process, so SIGTERM to ``docker run`` alone would leave the container up).
``options.container``, ``options.cache_dir``, ``options.tool_call_parser``,
``options.docker_args`` adjust it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from hbench.lanes import LaneKind, server_root
from hbench.models import LaneSpec
from hbench.plugins.lanes.vllm import VLLM_DECODE_COUNTERS, VLLM_METRIC_ALIASES

if TYPE_CHECKING:  # httpx is imported where it is used: listing plugins must stay fast
    import httpx


class NIMKind(LaneKind):
    name = "nim"
    description = "NVIDIA NIM; ready when /v1/health/ready is 200 (live comes first)"
    metrics_paths = ("/v1/metrics", "/metrics")
    metric_aliases = VLLM_METRIC_ALIASES  # a vLLM engine: vLLM's names
    decode_rate_counters = VLLM_DECODE_COUNTERS
    tool_call_fix = (
        "set NIM_ENABLE_AUTO_TOOL_CHOICE=1 and NIM_TOOL_CALL_PARSER=hermes (or the parser for "
        "your model) on the NIM container"
    )
    needs_auto_tool_choice = True  # a vLLM engine: tools are refused until auto tool choice is on

    def container(self, lane: LaneSpec) -> str:
        return str(lane.options.get("container") or f"hbench-{re.sub(r'[^A-Za-z0-9_.-]', '-', lane.name)}")

    def build_start(self, lane: LaneSpec) -> list[str] | None:
        image = lane.options.get("image")
        if not image:
            return None
        cmd = [str(lane.options.get("docker", "docker")), "run", "--rm", "--name", self.container(lane),
               "--gpus", "all", "-e", "NGC_API_KEY", "-p", "127.0.0.1:{port}:8000",
               "-e", "NIM_ENABLE_AUTO_TOOL_CHOICE=1",
               "-e", f"NIM_TOOL_CALL_PARSER={lane.options.get('tool_call_parser', 'hermes')}"]
        if lane.options.get("cache_dir"):
            cmd += ["-v", f"{lane.options['cache_dir']}:/opt/nim/.cache"]
        return cmd + [str(a) for a in lane.options.get("docker_args", [])] + [str(image)]

    def stop_command(self, lane: LaneSpec) -> list[str] | None:
        if not (lane.options.get("image") or lane.options.get("container")):
            return None
        return [str(lane.options.get("docker", "docker")), "stop", "-t", str(int(lane.stop_grace_s)),
                self.container(lane)]

    def ready(self, lane: LaneSpec, http: httpx.Client) -> tuple[bool, str]:
        import httpx

        root = server_root(lane.base_url or "")
        try:
            r = http.get(f"{root}/v1/health/ready")
        except httpx.HTTPError as exc:
            return False, f"not reachable ({type(exc).__name__})"
        if r.status_code == 200:
            return True, "/v1/health/ready -> 200"
        try:
            live = http.get(f"{root}/v1/health/live").status_code == 200
        except httpx.HTTPError:
            live = False
        state = "live, model still loading" if live else "not live"
        return False, f"{state} (/v1/health/ready -> {r.status_code})"
