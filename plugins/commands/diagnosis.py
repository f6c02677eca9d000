"""What ``hbench doctor LANE`` finds: is this lane fit to be benchmarked, and if not, what
to change (the command itself is :mod:`hbench.plugins.commands.doctor`).

Findings, each with a fix a person can apply: is the server ready; which model id it
serves (and whether that is the configured one); its context length; and whether a
one-tool request comes back as structured ``tool_calls`` or leaked into ``content``.

The tool check reads the raw response on purpose: the chat client normalises calls
embedded in content, which is exactly what doctor has to notice. It offers one tool, the
built-in ``read_file`` as the tools registry describes it (the schema an attempt offers),
and asks the model to read ``notes.txt`` with it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

import attrs
import httpx

from hbench.errors import LaneError
from hbench.lanes import (KeyRejected, LaneKind, RunningLane, for_a_quick_look, is_managed, key_rejected_message,
                          lane_http, open_lane)
from hbench.limits import response_json
from hbench.logging import scrub
from hbench.models import LaneSpec

MIN_CONTEXT = 8192  # a multi-turn tool-using attempt needs about this much
JINJA_FIX = "start llama-server with --jinja"
VLLM_FIX = "vLLM needs --enable-auto-tool-choice --tool-call-parser hermes (or the parser for your model)"

#: the tool the probe offers: a run's own, from the tools registry (:func:`probe_tool`)
TOOL_NAME = "read_file"
#: its schema when no plugin registered it (diagnosis called without a registry)
TOOL = {"type": "function", "function": {
    "name": TOOL_NAME, "description": "Read a text file from the working folder.",
    "parameters": {"type": "object", "properties": {"path": {"type": "string", "description": "relative path"}},
                   "required": ["path"]}}}
TOOL_PROMPT = f"Open the file notes.txt with the {TOOL_NAME} tool and tell me what it says."


def probe_tool(tools: Any = None) -> dict[str, Any]:
    """The ``tools[]`` entry the probe offers: the registered tool's own schema (what an
    attempt offers the model), else :data:`TOOL`."""
    if tools is not None and TOOL_NAME in tools:
        return tools.get(TOOL_NAME).schema()
    return TOOL


@attrs.define
class Finding:
    check: str  # ready | model | context | tool_calls
    status: str  # ok | warn | fail
    detail: str
    fix: str | None = None


def _key_fix(lane: LaneSpec) -> str:
    """What to do about a rejected key (never a parser or template problem)."""
    if lane.api_key_env:
        return (f"put the key the server expects in ${lane.api_key_env} (api_key_env of lane {lane.name!r}), "
                f"or check the server's own key setting")
    return (f"set api_key_env = \"NAME\" in [lanes.{lane.name}] to the variable holding the key "
            f"(or --api-key-env NAME)")


def _fix_from_error(text: str, kind: LaneKind) -> str:
    low = text.lower()
    if "jinja" in low:
        return JINJA_FIX
    if "enable-auto-tool-choice" in low or "tool-call-parser" in low or "tool choice" in low:
        return kind.tool_call_fix if kind.needs_auto_tool_choice else VLLM_FIX
    return kind.tool_call_fix


def looks_leaked(content: str) -> bool:
    """True when ``content`` carries a tool call as text (``<tool_call>``, JSON with a name
    and arguments, ``[TOOL_CALLS]``, a python-style ``read_file(path=...)``)."""
    c = content or ""
    name = re.escape(TOOL_NAME)
    if re.search(r"<\|?tool_call|\[TOOL_CALLS\]|<function[=>]", c, re.I):
        return True
    if re.search(rf'"(name|function)"\s*:\s*"{name}"', c) and re.search(r'"(arguments|parameters)"', c):
        return True
    return bool(re.search(rf"\b{name}\s*\(\s*(path\s*=)?\s*['\"]notes\.txt", c))


def check_tool_call(lane: LaneSpec, kind: LaneKind, http: httpx.Client, tool: dict[str, Any] | None = None) -> Finding:
    """Send one request with one tool (``tool``, else :data:`TOOL`) and judge what comes back."""
    body: dict[str, Any] = {
        "messages": [{"role": "system", "content": "You are an agent. Use tools when asked."},
                     {"role": "user", "content": TOOL_PROMPT}],
        "tools": [tool or TOOL], "tool_choice": "auto", "temperature": 0, "max_tokens": 256, "stream": False,
    }
    if lane.model:
        body["model"] = lane.model
    try:
        r = http.post(f"{(lane.base_url or '').rstrip('/')}/chat/completions", json=body)
    except httpx.HTTPError as exc:
        return Finding("tool_calls", "fail", f"request failed: {type(exc).__name__}: {exc}",
                       "check that the server is up and base_url ends in /v1")
    if r.status_code in (401, 403):
        return Finding("tool_calls", "fail", key_rejected_message(lane, r.status_code, "/chat/completions"),
                       _key_fix(lane))
    if r.status_code >= 400:
        text = scrub(r.text)[:300]  # scrubbed whole: a cut must not leave half a key
        return Finding("tool_calls", "fail", f"a request with tools was refused: HTTP {r.status_code}: {text}",
                       _fix_from_error(text, kind))
    try:
        choice = response_json(r)["choices"][0]
        msg = choice.get("message") or {}
    except (ValueError, KeyError, IndexError, TypeError):
        return Finding("tool_calls", "fail", f"unusable response body: {scrub(r.text)[:200]!r}",
                       "the endpoint does not speak OpenAI chat completions; check base_url")
    calls = msg.get("tool_calls") or []
    content = msg.get("content") or ""
    if calls:
        notes = []
        for call in calls:
            fn = (call or {}).get("function") or {}
            args = fn.get("arguments")
            if isinstance(args, dict):
                notes.append("arguments came as an object, not a JSON string (tolerated)")
            elif isinstance(args, str):
                try:
                    json.loads(args or "{}")
                except ValueError:
                    notes.append(f"arguments are not valid JSON: {args[:80]!r}")
            if not call.get("id"):
                notes.append("tool call without an id (hbench makes one up)")
        if choice.get("finish_reason") != "tool_calls":
            notes.append(f"finish_reason {choice.get('finish_reason')!r} instead of 'tool_calls' (tolerated)")
        names = ", ".join(str(((c or {}).get("function") or {}).get("name")) for c in calls)
        if any("not valid JSON" in n for n in notes):
            return Finding("tool_calls", "warn", f"structured tool_calls ({names}), but " + "; ".join(notes),
                           "malformed arguments count as format errors; a newer server build or another "
                           "tool-call parser may fix it")
        detail = f"structured tool_calls ({names})" + (f"; {'; '.join(notes)}" if notes else "")
        return Finding("tool_calls", "warn" if notes else "ok", detail)
    hint = _safe_hint(kind, lane, http)
    if looks_leaked(content):
        return Finding("tool_calls", "fail",
                       f"the tool call leaked into content instead of tool_calls: {scrub(content)[:160]!r}",
                       kind.tool_call_fix)
    if not content.strip():
        return Finding("tool_calls", "fail", "empty answer to a request with tools (the chat template or "
                       "format ignores tools)", hint or kind.tool_call_fix)
    return Finding("tool_calls", "warn", f"answered in prose without calling the tool: {scrub(content)[:120]!r}",
                   hint or ("a weak model, or a chat template without tool support: " + kind.tool_call_fix))


def _safe_hint(kind: LaneKind, lane: LaneSpec, http: httpx.Client) -> str | None:
    try:
        return kind.tool_call_hint(lane, http)
    except Exception:  # noqa: BLE001 - a hint is a courtesy; an odd server gets the generic fix
        return None


def diagnose(running: RunningLane, tool: dict[str, Any] | None = None) -> list[Finding]:
    """Findings for a lane that answered ready (``tool``: what the tool-call probe offers)."""
    spec, kind = running.spec, running.kind
    out: list[Finding] = []
    with lane_http(spec, timeout=120.0) as http:
        configured = spec.model
        served = running.served_model or kind.served_model(spec, http)
        if served is None:
            out.append(Finding("model", "warn", "the server lists no model in /v1/models",
                               "check that a model is loaded (Ollama: `ollama pull MODEL`)"))
        elif configured and served != configured:
            out.append(Finding("model", "fail", f"serves {served!r}, configured {configured!r}",
                               f"set model = {served!r} in [lanes.{spec.name}] (or start the server with "
                               f"that alias: llama-server -a, vLLM --served-model-name)"))
        else:
            out.append(Finding("model", "ok", f"serves {served!r}"))
        n_ctx = kind.context_length(spec, http)
        if n_ctx is None:
            out.append(Finding("context", "warn", "the server does not say its context length",
                               f"set context_length in [lanes.{spec.name}] to what you started it with"))
        elif n_ctx < MIN_CONTEXT:
            out.append(Finding("context", "warn", f"context length {n_ctx} tokens; multi-turn tool use needs "
                               f"{MIN_CONTEXT}+", "start the server with a larger context "
                               "(llama-server -c 16384, vLLM --max-model-len 16384)"))
        else:
            out.append(Finding("context", "ok", f"context length {n_ctx} tokens"))
        out.append(check_tool_call(spec, kind, http, tool))
    return out


def doctor(spec: LaneSpec, kind: LaneKind, *, out_dir: Path, headroom_gb: float = 2.0,
           on_status: Callable[[str], None] | None = None, wait_s: float = 10.0,
           tool: dict[str, Any] | None = None) -> list[Finding]:
    """Every finding for ``spec``. A managed lane is started (and stopped) for it; an
    unmanaged one gets ``wait_s`` to answer ready. ``tool`` is what the tool-call probe
    offers (:func:`probe_tool`; default :data:`TOOL`)."""
    managed = is_managed(spec, kind)
    spec = for_a_quick_look(spec, kind, wait_s)
    try:
        with open_lane(spec, kind, out_dir=out_dir, headroom_gb=headroom_gb, on_status=on_status) as running:
            ready = Finding("ready", "ok", f"{running.spec.base_url} answered ready")
            return [ready, *diagnose(running, tool)]
    except KeyRejected as exc:
        return [Finding("ready", "fail", scrub(str(exc)), _key_fix(spec))]
    except LaneError as exc:
        fix = ("start the server, or check base_url and the port it listens on" if not managed
               else "read the log tail above; check the start command and ready_timeout_s")
        return [Finding("ready", "fail", str(exc), fix)]


__all__ = ["Finding", "check_tool_call", "diagnose", "doctor", "looks_leaked", "probe_tool"]
