"""``ollama``: Ollama (default port 11434).

Ready = ``GET /`` answers "Ollama is running"; chat goes to ``/v1``. Models load lazily,
so the first request of a run pays the load. Context length is the model's ``num_ctx``
parameter from ``/api/show`` when it sets one.

Managed without a ``start`` command: ``options.serve = true`` runs ``ollama serve`` with
``OLLAMA_HOST=127.0.0.1:P``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from hbench.lanes import LaneKind, server_root
from hbench.limits import response_json
from hbench.models import LaneSpec

if TYPE_CHECKING:  # httpx is imported where it is used: listing plugins must stay fast
    import httpx


class OllamaKind(LaneKind):
    name = "ollama"
    description = "Ollama; ready when GET / says 'Ollama is running'"
    tool_call_fix = (
        "use a model whose Ollama template supports tools (`ollama show MODEL --template` "
        "mentions .Tools), or a newer Ollama"
    )

    def build_start(self, lane: LaneSpec) -> list[str] | None:
        if lane.options.get("serve") is True:
            return [str(lane.options.get("binary", "ollama")), "serve"]
        return None

    def prepare(self, lane: LaneSpec, out_dir: Path) -> LaneSpec:
        if lane.start is None and lane.options.get("serve") is True and "OLLAMA_HOST" not in lane.env:
            lane = attrs.evolve(lane, env={**lane.env, "OLLAMA_HOST": "127.0.0.1:{port}"})
        return super().prepare(lane, out_dir)

    def ready(self, lane: LaneSpec, http: httpx.Client) -> tuple[bool, str]:
        import httpx

        try:
            r = http.get(f"{server_root(lane.base_url or '')}/")
        except httpx.HTTPError as exc:
            return False, f"not reachable ({type(exc).__name__})"
        if r.status_code == 200 and "ollama is running" in r.text.lower():
            return True, "GET / -> Ollama is running"
        return False, f"GET / -> {r.status_code} {r.text[:40]!r}"

    def context_length(self, lane: LaneSpec, http: httpx.Client) -> int | None:
        import httpx

        if not lane.model:
            return None
        try:
            info = response_json(http.post(f"{server_root(lane.base_url or '')}/api/show", json={"model": lane.model}))
        except (httpx.HTTPError, ValueError):
            return None
        for line in str((info or {}).get("parameters") or "").splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] == "num_ctx" and parts[1].isdigit():
                return int(parts[1])
        return None
