"""``hbench discover``: find model servers already running on this box, with no config.

Probes the usual ports on loopback (vLLM 8000, llama.cpp 8080, SGLang 30000, Ollama
11434, LiteLLM 4000, LM Studio 1234, plus ``--port`` and ``$HBENCH_DISCOVER_PORTS``), names the kind from each server's
own signature (not from the port: a llama-server on 8000 is still llama.cpp), lists the
models it serves, and prints ready-to-paste ``[lanes.*]`` TOML (or ``--json``).

Signatures, tried in order on every open port (each one GET, short timeouts):

========== ============================================== =============
server     signature                                      lane kind
========== ============================================== =============
Ollama     ``GET /`` says "Ollama is running"              ollama
llama.cpp  ``GET /props`` has ``default_generation_settings`` llamacpp
SGLang     ``GET /get_model_info`` has ``model_path``      sglang
NIM        ``GET /v1/metadata`` has ``modelInfo``/``repository`` nim
LM Studio  ``GET /api/v0/models`` entries have ``publisher`` openai
LiteLLM    ``GET /health/liveliness`` says "I'm alive"     openai
vLLM       ``GET /version`` has ``version`` and ``/v1/models`` entries ``owned_by: vllm`` vllm
(other)    ``GET /v1/models`` answers a model list         openai
========== ============================================== =============

Only 127.0.0.1 is probed unless a host is given. Every probe has a connect timeout of
``connect_s`` and a total of ``read_s``; ports are probed in parallel, so a whole sweep
takes about one timeout.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    import httpx

#: port -> the server usually found there
DEFAULT_PORTS: dict[int, str] = {8000: "vLLM", 8080: "llama.cpp", 30000: "SGLang", 11434: "Ollama",
                                 4000: "LiteLLM", 1234: "LM Studio"}


#: more ports for ``hbench run --discover`` (and ``hbench discover``), comma-separated
PORTS_ENV = "HBENCH_DISCOVER_PORTS"


def extra_ports() -> list[int]:
    """Ports named in ``$HBENCH_DISCOVER_PORTS`` (bad entries are ignored, with a warning)."""
    import os

    out = []
    for part in os.environ.get(PORTS_ENV, "").split(","):
        part = part.strip()
        if part.isdigit() and 0 < int(part) < 65536:
            out.append(int(part))
        elif part:
            from hbench.logging import get_logger

            get_logger().warning("discover.bad_port", variable=PORTS_ENV, value=part)
    return out


@attrs.define
class Found:
    host: str
    port: int
    server: str  # "llama.cpp", "vLLM", ...
    kind: str  # the hbench lane kind
    base_url: str
    models: list[str]
    evidence: str  # which signature matched
    needs_key: bool = False  # /v1/models answered 401/403

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


def _get(http: httpx.Client, url: str) -> httpx.Response | None:
    import httpx

    try:
        return http.get(url)
    except (httpx.HTTPError, OSError):
        return None


def _json(r: httpx.Response | None) -> Any:
    if r is None or r.status_code != 200:
        return None
    try:
        from hbench.limits import response_json

        return response_json(r)
    except Exception:  # noqa: BLE001 - not JSON: no signature
        return None


def _model_ids(http: httpx.Client, root: str) -> tuple[list[str], list[dict[str, Any]], bool]:
    r = _get(http, f"{root}/v1/models")
    if r is not None and r.status_code in (401, 403):
        return [], [], True
    body = _json(r)
    data = body.get("data") if isinstance(body, dict) else None
    entries = [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []
    return [str(d["id"]) for d in entries if isinstance(d.get("id"), str)], entries, False


def identify(http: httpx.Client, host: str, port: int) -> Found | None:
    """What answers on ``host:port``, or None when nothing speaks HTTP there."""
    root = f"http://{host}:{port}"
    first = _get(http, f"{root}/")
    if first is None:
        return None  # refused, or not HTTP within the timeout
    ids, entries, needs_key = _model_ids(http, root)

    def found(server: str, kind: str, evidence: str, models: list[str] | None = None) -> Found:
        return Found(host=host, port=port, server=server, kind=kind, base_url=f"{root}/v1",
                     models=models if models is not None else ids, evidence=evidence, needs_key=needs_key)

    if first.status_code == 200 and "ollama is running" in first.text.lower():
        tags = _json(_get(http, f"{root}/api/tags"))
        names = [str(m.get("name")) for m in (tags or {}).get("models", []) if isinstance(m, dict)] \
            if isinstance(tags, dict) else []
        return found("Ollama", "ollama", "GET / -> 'Ollama is running'", ids or names)
    props = _json(_get(http, f"{root}/props"))
    if isinstance(props, dict) and ("default_generation_settings" in props or "build_info" in props):
        return found("llama.cpp", "llamacpp", "GET /props -> default_generation_settings")
    info = _json(_get(http, f"{root}/get_model_info"))
    if isinstance(info, dict) and "model_path" in info:
        return found("SGLang", "sglang", "GET /get_model_info -> model_path")
    meta = _json(_get(http, f"{root}/v1/metadata"))
    if isinstance(meta, dict) and ("modelInfo" in meta or "repository_override" in meta or "licenseInfo" in meta):
        return found("NVIDIA NIM", "nim", "GET /v1/metadata -> modelInfo")
    lms = _json(_get(http, f"{root}/api/v0/models"))
    if isinstance(lms, dict) and any(isinstance(d, dict) and "publisher" in d for d in lms.get("data") or []):
        return found("LM Studio", "openai", "GET /api/v0/models -> publisher")
    alive = _get(http, f"{root}/health/liveliness")
    if alive is not None and alive.status_code == 200 and "alive" in alive.text.lower():
        return found("LiteLLM", "openai", "GET /health/liveliness -> I'm alive")
    version = _json(_get(http, f"{root}/version"))
    if (isinstance(version, dict) and "version" in version) or any(d.get("owned_by") == "vllm" for d in entries):
        return found("vLLM", "vllm", "GET /version" if isinstance(version, dict) else "owned_by: vllm")
    if ids or needs_key:
        return found("OpenAI-compatible", "openai", "GET /v1/models -> a model list" if ids else
                     "GET /v1/models -> 401/403 (a key is needed)")
    return None


def discover(ports: list[int] | None = None, host: str = "127.0.0.1", *, connect_s: float = 0.3,
             read_s: float = 1.5) -> list[Found]:
    """Probe ``ports`` (default :data:`DEFAULT_PORTS`) on ``host`` in parallel."""
    import httpx

    todo = sorted(set(ports if ports is not None else DEFAULT_PORTS))
    timeout = httpx.Timeout(read_s, connect=connect_s)

    def one(port: int) -> Found | None:
        with httpx.Client(timeout=timeout, trust_env=False) as http:  # no proxy for loopback
            return identify(http, host, port)

    if not todo:
        return []
    with ThreadPoolExecutor(max_workers=min(16, len(todo))) as pool:
        results = list(pool.map(one, todo))
    return [f for f in results if f is not None]


def lane_name(f: Found, model: str | None, many: bool) -> str:
    base = {"llama.cpp": "llamacpp", "LM Studio": "lmstudio", "LiteLLM": "litellm", "NVIDIA NIM": "nim",
            "OpenAI-compatible": "openai"}.get(f.server, f.server.lower())
    name = f"{base}-{f.port}"
    if many and model:
        name += "-" + re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")[:40]
    return name


def lanes_of(found: list[Found]) -> list[dict[str, Any]]:
    """One lane per served model (one per server when it lists none)."""
    out = []
    for f in found:
        models: list[str | None] = list(f.models) or [None]
        for m in models:
            lane: dict[str, Any] = {"name": lane_name(f, m, len(models) > 1), "kind": f.kind,
                                    "base_url": f.base_url}
            if m:
                lane["model"] = m
            lane["comment"] = f"{f.server} on {f.host}:{f.port} ({f.evidence})"
            if f.needs_key:
                lane["comment"] += "; answers 401 without a key: set api_key_env"
            out.append(lane)
    return out


def _toml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid TOML basic string


def to_toml(found: list[Found]) -> str:
    """Ready-to-paste ``[lanes.NAME]`` tables for hbench.toml."""
    parts = []
    for lane in lanes_of(found):
        lines = [f"# {lane['comment']}", f"[lanes.{lane['name']}]", f"kind = {_toml_str(lane['kind'])}",
                 f"base_url = {_toml_str(lane['base_url'])}"]
        if "model" in lane:
            lines.append(f"model = {_toml_str(lane['model'])}")
        if "401" in lane["comment"]:
            lines.append('# api_key_env = "NAME_OF_THE_VARIABLE_HOLDING_THE_KEY"')
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + ("\n" if parts else "")


def register(app: Any) -> None:
    import typer

    @app.command("discover")
    def discover_cmd(
        port: list[int] = typer.Option([], "--port", help="Also probe this port (repeatable)."),
        host: str = typer.Option("127.0.0.1", "--host", help="Probe this host instead of loopback."),
        as_json: bool = typer.Option(False, "--json", help="Print what was found as JSON."),
        timeout: float = typer.Option(1.5, "--timeout", help="Seconds per probe (connect: at most 0.3 s)."),
    ) -> None:
        """Find model servers on the usual local ports; print [lanes.*] TOML to paste."""
        if timeout <= 0:
            typer.echo(f"--timeout {timeout}: must be more than 0 seconds", err=True)
            raise typer.Exit(2)
        ports = sorted(set(DEFAULT_PORTS) | set(port) | set(extra_ports()))
        bad = [p for p in ports if not 0 < p < 65536]
        if bad:
            typer.echo(f"--port {bad[0]}: not a TCP port (1-65535)", err=True)
            raise typer.Exit(2)
        found = discover(ports, host, connect_s=min(0.3, timeout), read_s=timeout)
        if as_json:
            typer.echo(json.dumps({"host": host, "ports": ports, "found": [f.to_json() for f in found],
                                   "lanes": lanes_of(found)}, indent=2))
            return
        if not found:
            typer.echo(f"# no model server answered on {host} ports {', '.join(map(str, ports))}", err=True)
            raise typer.Exit(1)
        typer.echo(f"# found {len(found)} server{'s' if len(found) != 1 else ''} on {host}; "
                   f"paste into hbench.toml, then: hbench run --lanes all", err=True)
        typer.echo(to_toml(found), nl=False)
