"""Reading one ``hermes`` attempt back: its session export (``hermes sessions export``)
into the Attempt's answer, tool calls, transcript and turns, and Hermes' tool calls into
hbench's tool vocabulary (``expect_tool_any``).

Facts this relies on (hermes-agent 0.19.0) are in docs/HERMES.md.
"""

from __future__ import annotations

import bisect
import json
import os
import re
import shlex
from typing import Any, Iterable, Mapping, Sequence

from hbench.logging import scrub
from hbench.models import Attempt, ToolCall, Turn

#: how much of each tool result the Attempt keeps (the session export holds it all)
RESULT_CAP = 4000

#: Hermes tool name -> tokens of hbench's tool vocabulary it satisfies
TOOL_ALIASES: dict[str, tuple[str, ...]] = {
    "search_files": ("list", "ls", "glob", "grep", "find"),
    "read_file": ("read",),
}

#: a ``terminal`` command whose first word is one of these also satisfies the tokens
TERMINAL_ALIASES: dict[str, tuple[str, ...]] = {
    "ls": ("list", "ls"),
    "find": ("list", "find", "glob"),
    "tree": ("list",),
    "cat": ("read",),
    "head": ("read",),
    "tail": ("read",),
    "grep": ("grep",),
    "rg": ("grep",),
}

#: Hermes' own answer to a call of a tool it does not offer
_UNKNOWN_TOOL = re.compile(r"^Tool '(?P<name>[^']*)' does not exist\.")
#: the user message Hermes injects when it hits its own iteration limit
_MAX_ITER_MARK = "You've reached the maximum number of tool-calling iterations"


def bucket_sessions(prompt_starts: Sequence[tuple[str, float]],
                    sessions: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """The published rule for exports that carry no session id: each session belongs to
    the **last** prompt whose start time is <= the session's ``started_at``. Buckets are
    mutually exclusive and there is no padding window: a session that started before
    every prompt belongs to none. Prompts with equal starts: the later one in
    ``prompt_starts`` wins. Every key of ``prompt_starts`` gets a (maybe empty) list;
    sessions keep their input order inside a bucket.
    """
    order = sorted(range(len(prompt_starts)), key=lambda i: prompt_starts[i][1])  # stable
    starts = [float(prompt_starts[i][1]) for i in order]
    out: dict[str, list[Mapping[str, Any]]] = {key: [] for key, _ in prompt_starts}
    for s in sessions:
        try:
            t = float(s["started_at"])
        except (KeyError, TypeError, ValueError):
            continue  # no start time: cannot be placed, and is never guessed
        i = bisect.bisect_right(starts, t)
        if i:
            out[prompt_starts[order[i - 1]][0]].append(s)
    return out


def aliases_for_call(call: ToolCall) -> tuple[str, ...]:
    """Extra tool tokens one Hermes tool call satisfies (``search_files`` -> list, ...;
    ``terminal`` running ``ls`` -> list)."""
    if call.name in TOOL_ALIASES:
        return TOOL_ALIASES[call.name]
    if call.name == "terminal" and isinstance(call.arguments, dict):
        command = str(call.arguments.get("command") or "")
        out: list[str] = []
        for segment in re.split(r"&&|\|\||[;|\n]", command):
            try:
                words = shlex.split(segment)
            except ValueError:  # unbalanced quotes: fall back to whitespace
                words = segment.split()
            while words and ("=" in words[0] or words[0] in ("sudo", "env", "command", "cd")):
                words = words[2:] if words[0] == "cd" else words[1:]
            if words:
                out.extend(TERMINAL_ALIASES.get(os.path.basename(words[0]), ()))
        return tuple(dict.fromkeys(out))
    return ()


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in content)
    return str(content)


def _tool_error(result: str) -> str | None:
    """The error a Hermes tool result carries, or None (results are JSON or text)."""
    m = _UNKNOWN_TOOL.match(result)
    if m:
        return f"unknown tool {m.group('name')!r}"
    try:
        obj = json.loads(result)
    except ValueError:
        return None
    if isinstance(obj, dict) and obj.get("error"):
        return str(obj["error"])[:500]
    return None


def parse_export(text: str) -> list[dict[str, Any]]:
    """The sessions in ``hermes sessions export`` JSONL (one session row per line, with its
    ``messages``). Lines that are not JSON objects are skipped."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def fill_from_sessions(attempt: Attempt, sessions: Sequence[Mapping[str, Any]]) -> None:
    """Fill ``answer``, ``tool_calls``, ``transcript``, ``turns``, ``format_errors`` and
    ``unknown_tools`` of ``attempt`` from the exported session(s) of one attempt
    (several when Hermes split the run; they are taken in ``started_at`` order)."""
    sessions = sorted(sessions, key=lambda s: float(s.get("started_at") or 0.0))
    messages: list[Mapping[str, Any]] = []
    for s in sessions:
        messages.extend(sorted(s.get("messages") or [], key=lambda m: (m.get("timestamp") or 0.0, m.get("id") or 0)))
    calls: dict[str, ToolCall] = {}
    ordered: list[ToolCall] = []
    transcript: list[dict[str, Any]] = []
    turns: list[Turn] = []
    answer = ""
    prev_ts: float | None = float(sessions[0]["started_at"]) if sessions and sessions[0].get("started_at") else None
    for m in messages:
        role = m.get("role")
        content = scrub(_text(m.get("content")))
        entry: dict[str, Any] = {"role": role, "content": content}
        ts = m.get("timestamp")
        if role == "assistant":
            raw_calls = m.get("tool_calls") or []
            if raw_calls:
                entry["tool_calls"] = []
            for i, rc in enumerate(raw_calls):
                fn = rc.get("function") or {}
                name = str(fn.get("name") or "")
                raw_args = fn.get("arguments")
                fmt_error = False
                if isinstance(raw_args, str):
                    try:
                        args: Any = json.loads(raw_args) if raw_args.strip() else {}
                    except ValueError:
                        args, fmt_error = raw_args, True
                else:
                    args = raw_args if raw_args is not None else {}
                if fmt_error or not isinstance(args, dict):
                    fmt_error = True
                call_id = str(rc.get("id") or rc.get("call_id") or f"call_{len(ordered)}_{i}")
                tc = ToolCall(name=name, arguments=args, id=call_id, format_error=fmt_error)
                calls[call_id] = tc
                ordered.append(tc)
                entry["tool_calls"].append({"id": call_id, "name": name, "arguments": scrub(
                    raw_args if isinstance(raw_args, str) else json.dumps(raw_args))})
            if ts is not None and prev_ts is not None:
                wall = max(0.0, float(ts) - prev_ts)
            else:
                wall = 0.0
            turns.append(Turn(wall_s=round(wall, 4), finish_reason=m.get("finish_reason"),
                              completion_tokens=m.get("token_count")))
            if not raw_calls and content.strip():
                answer = content
        elif role == "tool":
            call_id = str(m.get("tool_call_id") or "")
            entry["tool_call_id"] = call_id
            if m.get("tool_name"):
                entry["name"] = m.get("tool_name")
            tc = calls.get(call_id)
            if tc is not None:
                tc.result = content[:RESULT_CAP]
                err = _tool_error(content)
                if err:
                    tc.ok, tc.error = False, err
        if ts is not None:
            prev_ts = float(ts)
        transcript.append(entry)
    attempt.tool_calls = ordered
    attempt.transcript = transcript
    attempt.turns = turns
    attempt.answer = answer
    attempt.format_errors = sum(1 for tc in ordered if tc.format_error)
    unknown = sum(1 for tc in ordered if tc.error and tc.error.startswith("unknown tool"))
    attempt.unknown_tools = unknown
    if any(m.get("role") == "user" and _MAX_ITER_MARK in _text(m.get("content")) for m in messages):
        attempt.runaway = attempt.runaway or "max_turns"
