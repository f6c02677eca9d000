"""Tool-call normalisation: what a server sent as tool calls (structured, as an object,
written into content, fenced) becomes well-formed calls or a format error.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any, Iterable, Sequence

import attrs

from hbench.limits import depth
from hbench.text import has_surrogate, valid_json, valid_text


@attrs.frozen
class NormalisedToolCall:
    """One tool call, after tolerating the server's deviations.

    ``arguments`` is a dict, or None when the arguments were malformed; then
    ``format_error`` is a one-line message for the model and ``raw_arguments`` keeps
    what the server sent (for the journal, never for replay).
    """

    id: str
    name: str
    arguments: dict[str, Any] | None
    raw_arguments: str
    format_error: str | None = None
    source: str = "tool_calls"  # "tool_calls" | "content" (embedded in the answer text)

    def to_wire(self) -> dict[str, Any]:
        """The call as it is replayed in the assistant message (malformed -> ``{}``)."""
        args = json.dumps(self.arguments, ensure_ascii=False) if self.arguments is not None else "{}"
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": args}}


# --------------------------------------------------------------------------- tool calls


def kind_of(v: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}.get(
        type(v), type(v).__name__)


#: deepest tool-call arguments accepted (a real call is 1-3 levels); deeper is a format error,
#: so no journal write or report meets a structure near Python's recursion limit
ARGS_MAX_DEPTH = 32


def _too_deep(value: Any) -> bool:
    """Parsed arguments nested deeper than :data:`ARGS_MAX_DEPTH` (counted without recursion)."""
    return depth(value, ARGS_MAX_DEPTH) > ARGS_MAX_DEPTH


def parse_arguments(value: Any, name: str = "") -> tuple[dict[str, Any] | None, str, str | None]:
    """Tool-call arguments as the server sent them -> ``(arguments, raw, format_error)``.

    Accepts a JSON string, an object, ``""``/``None`` (no arguments) and a JSON string
    encoded twice. Anything else is a format error with a message for the model.
    """
    label = f"tool call {name!r}" if name else "tool call"
    if value is None:
        return {}, "", None
    too_deep = (f"{label}: arguments are nested deeper than {ARGS_MAX_DEPTH} levels; "
                "call the tool again with flat arguments as one JSON object")
    if isinstance(value, dict) and _too_deep(value):
        return None, "(arguments nested too deeply to show)", too_deep
    if isinstance(value, dict):
        try:
            raw = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError):
            raw = repr(value)
        return value, raw, None
    if not isinstance(value, str):
        raw = json.dumps(value, ensure_ascii=False, default=str)
        return None, raw, f"{label}: arguments must be a JSON object, got {kind_of(value)}; send them as one JSON object"
    raw = value
    if not value.strip():
        return {}, raw, None
    try:
        parsed = json.loads(value)
    except (json.JSONDecodeError, RecursionError) as exc:
        detail = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        where = f" at char {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
        return None, raw, (f"{label}: arguments are not valid JSON ({detail}{where}); "
                           "call the tool again with the arguments as one JSON object")
    if isinstance(parsed, (dict, list)) and _too_deep(parsed):
        return None, raw, too_deep
    if isinstance(parsed, str):  # encoded twice
        try:
            again = json.loads(parsed)
        except (json.JSONDecodeError, RecursionError):
            again = None
        if isinstance(again, dict):
            if _too_deep(again):
                return None, raw, too_deep
            return again, raw, None
    if parsed is None:
        return {}, raw, None
    if not isinstance(parsed, dict):
        return None, raw, f"{label}: arguments must be a JSON object, got {kind_of(parsed)}; send them as one JSON object"
    return parsed, raw, None


_TAG_RE = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|\Z)", re.S)
_FENCE_RE = re.compile(r"```[ \t]*(?:json|tool_call|tool_code|tool)?[ \t]*\r?\n?(.*?)```", re.S | re.I)
_NAME_RE = re.compile(r'"name"\s*:\s*"([^"\\]{1,200})"')


def _synth_id() -> str:
    return f"call_{uuid.uuid4().hex[:12]}"


def _calls_from_object(obj: Any) -> list[tuple[str, Any]] | None:
    """``{"name", "arguments"|"parameters"}``, ``{"function": {...}}`` or a list of them."""
    items = obj if isinstance(obj, list) else [obj]
    out: list[tuple[str, Any]] = []
    for it in items:
        if not isinstance(it, dict):
            return None
        fn = it.get("function") if isinstance(it.get("function"), dict) else it
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            return None
        args = fn.get("arguments", fn.get("parameters", {}))
        out.append((name, args))
    return out or None


def _embedded_calls(block: str, source_ok: bool) -> list[NormalisedToolCall] | None:
    try:
        obj = json.loads(block)
    except (json.JSONDecodeError, RecursionError):
        if not source_ok:
            return None
        m = _NAME_RE.search(block)
        name = m.group(1) if m else ""
        return [NormalisedToolCall(
            id=_synth_id(), name=name, arguments=None, raw_arguments=block, source="content",
            format_error=(f"tool call {name!r} written in the answer text is not valid JSON; "
                          "call the tool again with the arguments as one JSON object"))]
    found = _calls_from_object(obj)
    if found is None:
        if not source_ok:
            return None
        return [NormalisedToolCall(id=_synth_id(), name="", arguments=None, raw_arguments=block, source="content",
                                   format_error="a <tool_call> block without a tool name; "
                                                'send {"name": ..., "arguments": {...}}')]
    out = []
    for name, args in found:
        parsed, raw, err = parse_arguments(args, name)
        out.append(NormalisedToolCall(id=_synth_id(), name=name, arguments=parsed, raw_arguments=raw,
                                      format_error=err, source="content"))
    return out


def normalise_tool_calls(raw_calls: Sequence[Any] | None, content: str | None,
                         tool_names: Iterable[str] | None = None
                         ) -> tuple[list[NormalisedToolCall], str, list[str]]:
    """Structured calls plus calls embedded in ``content`` -> ``(calls, content, warnings)``.

    ``<tool_call>`` blocks are always taken from the content (llama.cpp leaks later calls
    there); fenced JSON only when there is no structured call and the name is one of
    ``tool_names`` (a final answer may legitimately hold JSON). The returned content has
    the extracted blocks removed.
    """
    warnings: list[str] = []
    calls: list[NormalisedToolCall] = []
    seen_ids: set[str] = set()
    for i, tc in enumerate(raw_calls or []):
        if not isinstance(tc, dict):
            warnings.append(f"tool_calls[{i}] is not an object; ignored")
            continue
        fn = tc.get("function") if isinstance(tc.get("function"), dict) else tc
        name = fn.get("name") if isinstance(fn.get("name"), str) else ""
        args_value = fn.get("arguments", fn.get("parameters"))
        parsed, raw, err = parse_arguments(args_value, name)
        if not name:
            parsed, err = None, "a tool call without a function name; name the tool you want to call"
        if isinstance(args_value, dict):
            warnings.append(f"tool call {name!r}: arguments sent as an object, not a JSON string")
        tid = tc.get("id") if isinstance(tc.get("id"), str) and tc.get("id") else None
        if tid is None or tid in seen_ids:
            if tid is None:
                warnings.append(f"tool call {name!r} had no id; synthesised one")
            tid = _synth_id()
        seen_ids.add(tid)
        calls.append(NormalisedToolCall(id=tid, name=name, arguments=parsed, raw_arguments=raw, format_error=err))

    text = content or ""
    if "<tool_call>" in text:
        kept: list[str] = []
        pos = 0
        for m in _TAG_RE.finditer(text):
            found = _embedded_calls(m.group(1), source_ok=True) or []
            calls.extend(found)
            kept.append(text[pos:m.start()])
            pos = m.end()
        kept.append(text[pos:])
        text = "".join(kept).strip()
        warnings.append("tool call(s) written into the content as <tool_call> blocks")
    elif not calls and "```" in text and tool_names is not None:
        names = set(tool_names)
        kept, pos, took = [], 0, False
        for m in _FENCE_RE.finditer(text):
            found = _embedded_calls(m.group(1).strip(), source_ok=False)
            if found and all(c.name in names for c in found):
                calls.extend(found)
                kept.append(text[pos:m.start()])
                pos = m.end()
                took = True
        if took:
            kept.append(text[pos:])
            text = "".join(kept).strip()
            warnings.append("tool call(s) written into the content as fenced JSON")
    return calls, text, warnings


def valid_call(c: NormalisedToolCall) -> NormalisedToolCall:
    """``c`` with every text valid Unicode (:mod:`hbench.text`); itself when it already is."""
    args = valid_json(c.arguments) if c.arguments else c.arguments
    if args is c.arguments and not has_surrogate(c.name + c.id + c.raw_arguments + (c.format_error or "")):
        return c
    return attrs.evolve(c, id=valid_text(c.id), name=valid_text(c.name), raw_arguments=valid_text(c.raw_arguments),
                        arguments=args, format_error=valid_text(c.format_error) if c.format_error else None)
