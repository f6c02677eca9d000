"""Scripts for the scripted server: turns, tool calls and faults, from Python or a JSON file."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import attrs



FAULT_KINDS: frozenset[str] = frozenset({
    "http", "reject_stream", "stall", "stall_mid_stream", "drop", "truncated_json",
    "invalid_utf8", "wrong_content_type", "huge_body", "no_done", "empty",
    "malformed_args", "args_object", "calls_in_content", "fenced_calls", "missing_ids",
    "stop_finish", "other_model", "many_args", "sse_comments", "no_usage",
})
#: faults a client is expected to retry: a start request hit by one is not a new attempt
RETRIED_FAULTS: frozenset[str] = frozenset({"http", "drop", "reject_stream"})
#: faults that replace the normal response (at most one applies per request)
_TRANSPORT_FAULTS = ("http", "reject_stream", "stall", "wrong_content_type", "empty",
                     "truncated_json", "invalid_utf8", "huge_body", "drop",
                     "stall_mid_stream", "no_done")

DEFAULT_MODEL = "scripted-model"
_FILLER = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")
_ID_RE = re.compile(r"call_a(\d+)t\d+i\d+_")


class ScriptError(ValueError):
    """A script (file or Python value) is invalid; the message names where and why."""


# --------------------------------------------------------------------------- scripts


@attrs.frozen
class Fault:
    """One injected misbehaviour; see the module docstring for the kinds."""

    kind: str = attrs.field()
    times: int | None = None  # None = every request that reaches the turn
    status: int = 500
    retry_after_s: float | None = None
    stall_s: float | None = None  # None = until the client disconnects (stall) / 0 (no_done)
    after_chunks: int = 2
    size_bytes: int = 50 * 1024 * 1024
    model: str = "other-model"
    count: int = 10_000

    @kind.validator
    def _check_kind(self, _a: Any, value: str) -> None:
        if value not in FAULT_KINDS:
            raise ScriptError(f"unknown fault kind {value!r} (known: {', '.join(sorted(FAULT_KINDS))})")


@attrs.frozen
class ToolCallSpec:
    name: str
    arguments: Any = attrs.field(factory=dict)  # dict (JSON-encoded on the wire) or a raw string
    id: str | None = None


@attrs.frozen
class Turn:
    """One model reply: tool calls, or a final answer (content), or both."""

    content: str | None = None
    reasoning: str | None = None
    tool_calls: tuple[ToolCallSpec, ...] = ()
    tokens: int | None = None  # answer with this many filler tokens
    finish_reason: str | None = None
    latency_s: float | None = None
    token_latency_s: float | None = None
    faults: tuple[Fault, ...] = ()


@attrs.frozen
class Script:
    """The turns played for prompts containing ``match`` (``attempts`` varies them)."""

    match: str
    turns: tuple[Turn, ...] = ()
    attempts: tuple[tuple[Turn, ...], ...] = ()

    def turns_for(self, attempt: int) -> tuple[Turn, ...]:
        """Turns of the 1-based ``attempt``."""
        if self.attempts:
            return self.attempts[(attempt - 1) % len(self.attempts)]
        return self.turns


def answer(text: str, **kw: Any) -> Turn:
    """A final-answer turn."""
    return Turn(content=text, **kw)


def call(name: str, arguments: Any = None, /, **kwargs: Any) -> Turn:
    """A turn with one tool call: ``call("read_file", path="a.md")`` or ``call("x", {...})``.
    Turn options go in ``turn=dict(...)``: ``call("grep", pattern="x", turn={"faults": [...]})``."""
    turn_kw = kwargs.pop("turn", {}) or {}
    args = dict(arguments) if isinstance(arguments, dict) else (arguments if arguments is not None else {})
    if isinstance(args, dict):
        args.update(kwargs)
    return _turn({**turn_kw, "tool_calls": [{"name": name, "arguments": args}]}, "call()")


def calls(*specs: tuple[str, Any] | ToolCallSpec, **turn_kw: Any) -> Turn:
    """A turn with several tool calls: ``calls(("glob", {"pattern": "*"}), ("read_file", {...}))``."""
    out = [s if isinstance(s, ToolCallSpec) else ToolCallSpec(s[0], s[1]) for s in specs]
    return _turn({**turn_kw, "tool_calls": out}, "calls()")


def _fault(value: Any, where: str) -> Fault:
    if isinstance(value, Fault):
        return value
    if isinstance(value, str):
        value = {"kind": value}
    if not isinstance(value, dict):
        raise ScriptError(f"{where}: a fault is an object with 'kind', got {type(value).__name__}")
    known = {a.name for a in attrs.fields(Fault)}
    extra = sorted(set(value) - known)
    if extra:
        raise ScriptError(f"{where}: unknown key(s) {', '.join(map(repr, extra))} (known: {', '.join(sorted(known))})")
    if "kind" not in value:
        raise ScriptError(f"{where}: a fault needs 'kind' (one of {', '.join(sorted(FAULT_KINDS))})")
    try:
        return Fault(**value)
    except ScriptError as exc:
        raise ScriptError(f"{where}: {exc}") from None
    except TypeError as exc:
        raise ScriptError(f"{where}: {exc}") from None


def _tool_call(value: Any, where: str) -> ToolCallSpec:
    if isinstance(value, ToolCallSpec):
        return value
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise ScriptError(f"{where}: a tool call is an object with a string 'name' and 'arguments'")
    extra = sorted(set(value) - {"name", "arguments", "id"})
    if extra:
        raise ScriptError(f"{where}: unknown key(s) {', '.join(map(repr, extra))} (known: arguments, id, name)")
    return ToolCallSpec(name=value["name"], arguments=value.get("arguments", {}), id=value.get("id"))


_TURN_KEYS = {a.name for a in attrs.fields(Turn)}


def _turn(value: Any, where: str) -> Turn:
    if isinstance(value, Turn):
        return value
    if isinstance(value, str):
        return Turn(content=value)
    if not isinstance(value, dict):
        raise ScriptError(f"{where}: a turn is an object (content / tool_calls / faults ...), got {type(value).__name__}")
    extra = sorted(set(value) - _TURN_KEYS)
    if extra:
        raise ScriptError(f"{where}: unknown key(s) {', '.join(map(repr, extra))} (known: {', '.join(sorted(_TURN_KEYS))})")
    kw = dict(value)
    tcs = kw.pop("tool_calls", None) or []
    if not isinstance(tcs, (list, tuple)):
        raise ScriptError(f"{where}.tool_calls: expected a list")
    faults = kw.pop("faults", None) or []
    if not isinstance(faults, (list, tuple)):
        raise ScriptError(f"{where}.faults: expected a list")
    for key in ("content", "reasoning", "finish_reason"):
        if kw.get(key) is not None and not isinstance(kw[key], str):
            raise ScriptError(f"{where}.{key}: expected a string")
    for key in ("latency_s", "token_latency_s"):
        if kw.get(key) is not None and (not isinstance(kw[key], (int, float)) or kw[key] < 0):
            raise ScriptError(f"{where}.{key}: expected a number >= 0")
    if kw.get("tokens") is not None and (not isinstance(kw["tokens"], int) or kw["tokens"] < 0):
        raise ScriptError(f"{where}.tokens: expected an integer >= 0")
    return Turn(
        tool_calls=tuple(_tool_call(t, f"{where}.tool_calls[{i}]") for i, t in enumerate(tcs)),
        faults=tuple(_fault(f, f"{where}.faults[{i}]") for i, f in enumerate(faults)),
        **kw,
    )


def _turns(value: Any, where: str) -> tuple[Turn, ...]:
    if isinstance(value, (Turn, str, dict)):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise ScriptError(f"{where}: expected a non-empty list of turns")
    return tuple(_turn(t, f"{where}[{i}]") for i, t in enumerate(value))


def _script(value: Any, where: str, match: str | None = None) -> Script:
    if isinstance(value, Script):
        return value
    if isinstance(value, dict) and ("turns" in value or "attempts" in value or "match" in value):
        extra = sorted(set(value) - {"match", "turns", "attempts"})
        if extra:
            raise ScriptError(f"{where}: unknown key(s) {', '.join(map(repr, extra))} (known: attempts, match, turns)")
        m = value.get("match", match)
        if not isinstance(m, str):
            raise ScriptError(f"{where}.match: expected the prompt substring as a string")
        if "attempts" in value:
            atts = value["attempts"]
            if not isinstance(atts, (list, tuple)) or not atts:
                raise ScriptError(f"{where}.attempts: expected a non-empty list of turn lists")
            return Script(m, attempts=tuple(_turns(a, f"{where}.attempts[{i}]") for i, a in enumerate(atts)))
        return Script(m, turns=_turns(value.get("turns"), f"{where}.turns"))
    if match is None:
        raise ScriptError(f"{where}: expected a script object with 'match' and 'turns' or 'attempts'")
    return Script(match, turns=_turns(value, where))


def parse_scripts(value: Any, where: str = "scripts") -> list[Script]:
    """Scripts from ``{match: turns}``, a list of scripts, or ``None``."""
    if value is None:
        return []
    if isinstance(value, Script):
        return [value]
    if isinstance(value, dict):
        return [_script(v, f"{where}[{k!r}]", match=k) for k, v in value.items()]
    if isinstance(value, (list, tuple)):
        return [_script(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise ScriptError(f"{where}: expected a mapping of prompt substring -> turns, or a list of scripts")


def load_script_file(path: str | Path) -> dict[str, Any]:
    """Read a script file: ``{"scripts": [...], "default": [...], "model": ...}`` (see above).
    Returns constructor keyword arguments for :class:`ScriptedServer`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScriptError(f"script file {path}: cannot read it ({exc.strerror or exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ScriptError(f"script file {path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ScriptError(f"script file {path}: the top level must be an object with 'scripts'")
    extra = sorted(set(data) - {"scripts", "default", "model"})
    if extra:
        raise ScriptError(f"script file {path}: unknown key(s) {', '.join(map(repr, extra))} (known: default, model, scripts)")
    try:
        out: dict[str, Any] = {"scripts": parse_scripts(data.get("scripts"), "scripts")}
        if data.get("default") is not None:
            out["default"] = _turns(data["default"], "default")
    except ScriptError as exc:
        raise ScriptError(f"script file {path}: {exc}") from None
    if data.get("model") is not None:
        if not isinstance(data["model"], str):
            raise ScriptError(f"script file {path}: model: expected a string")
        out["model"] = data["model"]
    return out
