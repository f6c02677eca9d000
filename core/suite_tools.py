"""Suite tools: tools built from data (``tools.jsonl``, the decoy catalogue), and the
tool set each prompt offers (DESIGN.md, "Scenario fields (suite format 2)").

A line of ``tools.jsonl``::

    {"name": "lookup_order", "description": "...", "parameters": {JSON Schema},
     "responses": [{"when": {"order_id": "A-1043"}, "result": {...} | "@fixtures/path"},
                   {"when": {"order_id": {"regex": "^B-"}}, "error": "order archived"}],
     "default": {...}, "fail_first": 1, "error_text": "...", "destructive": false}

:func:`parse_tool_rows` validates such rows (the JSON Schema with ``jsonschema``, every
``@fixtures/`` path, every ``when``) and resolves placeholders; :class:`DataTool` is the
tool built from one. It runs inside the attempt's :class:`~hbench.sandbox.Sandbox` and is
deterministic: ``fail_first`` counts calls per attempt (the count lives on the sandbox,
which is per attempt), a ``destructive`` tool records the call on the sandbox and never
acts, and every result reaches the model as JSON text.

:func:`build_suite_tools` turns a loaded suite's tools into tool objects (for the runner,
and for anything else that serves them, such as an MCP server); :func:`offered_tools` is
the tool set of one prompt: ``tools`` (or the default built-ins) plus ``decoys`` chosen
from the decoy tools (registered tools whose ``decoy`` attribute is true), seeded by
suite name and prompt id, so the same prompt always gets the same decoys in the same
order.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from hbench.matching import args_match, describe, form_error
from hbench.models import SuiteToolSpec, ToolResponse
from hbench.tools import Tool, ToolError

if TYPE_CHECKING:  # pragma: no cover
    from hbench.models import Prompt, Suite
    from hbench.sandbox import Sandbox

__all__ = [
    "DECOY_DEFAULT",
    "DataTool",
    "build_suite_tools",
    "choose_decoys",
    "default_tools",
    "offered_tools",
    "parse_tool_rows",
]

#: what a decoy answers when its catalogue line gives no ``default``: nothing, blandly
DECOY_DEFAULT: dict[str, Any] = {"results": [], "total": 0, "note": "no matching records"}

#: the OpenAI function-name rule
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_FIELDS = ("name", "description", "parameters", "responses", "default", "fail_first", "error_text",
           "destructive")
_RESPONSE_FIELDS = ("when", "result", "error")
FIXTURE_REF = "@fixtures/"


# --------------------------------------------------------------------------- parsing


def _schema_problem(schema: Any) -> str | None:
    """Why ``schema`` is not a usable JSON Schema for a tool's arguments, or None."""
    if not isinstance(schema, dict):
        return 'expected a JSON Schema object like {"type": "object", "properties": {...}}'
    if schema.get("type") != "object":
        return 'the arguments are one JSON object: the schema needs "type": "object"'
    from jsonschema.exceptions import best_match  # heavy (~0.15 s): only suites with tools need it

    error = best_match(_meta_validator().iter_errors(schema))
    if error is not None:
        where = "/".join(str(p) for p in error.path)
        return f"not a valid JSON Schema: {error.message}" + (f" (at {where})" if where else "")
    return None


@lru_cache(maxsize=1)
def _meta_validator() -> Any:
    """The JSON Schema 2020-12 meta-schema's validator, built once (``check_schema`` builds
    one per call: 10 ms a tool; reused, ~6 ms). jsonschema is imported here, lazily: only
    suites with tools need it."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator(Draft202012Validator.META_SCHEMA)


def parse_tool_rows(
    rows: Iterable[tuple[int, dict[str, Any]]],
    fname: str,
    problem: Callable[[str, str | None, str], None],
    *,
    substitute: Callable[[Any, str, str], Any] | None = None,
    fixtures: Mapping[str, bytes] | None = None,
    reserved: Iterable[str] = (),
    decoy: bool = False,
    check_schemas: bool = True,
) -> list[SuiteToolSpec]:
    """Validate ``(line, object)`` rows of a tools file into specs; every problem goes to
    ``problem(where, key, message)`` (``where`` = ``file:line``), none raises.

    ``substitute(value, where, key)`` resolves placeholders (and reports unknown ones);
    ``fixtures`` is the rendered fixture tree that ``@fixtures/path`` results point into;
    ``reserved`` are names already taken (the built-in tools).
    """
    reserved = set(reserved)
    seen: dict[str, int] = {}
    out: list[SuiteToolSpec] = []
    sub = substitute or (lambda value, _where, _key: value)
    for lineno, raw in rows:
        where = f"{fname}:{lineno}"
        bad = False

        def fail(key: str | None, msg: str) -> None:
            nonlocal bad
            bad = True
            problem(where, key, msg)

        extra = sorted(set(raw) - set(_FIELDS))
        if extra:
            fail(None, f"unknown key {', '.join(map(repr, extra))} (allowed: {', '.join(_FIELDS)})")
        name = raw.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            fail("name", f"{name!r} is not a tool name (letters, digits, '_' or '-', at most 64, "
                         "starting with a letter or '_')")
            name = None
        elif name in seen:
            fail("name", f"duplicate tool {name!r} (first at line {seen[name]}; names must be unique)")
        elif name in reserved:
            fail("name", f"{name!r} is a built-in tool; give the suite tool another name")
        else:
            seen[name] = lineno
        desc = sub(raw.get("description", ""), where, "description")
        if not isinstance(desc, str) or not desc.strip():
            fail("description", "missing or empty (say what the tool does: the model picks tools by it)")
        params = sub(raw.get("parameters"), where, "parameters")
        if "parameters" not in raw:
            fail("parameters", 'missing (a JSON Schema: {"type": "object", "properties": {...}})')
            params = None
        elif check_schemas:
            why = _schema_problem(params)
            if why:
                fail("parameters", why)
                params = None
        props = set((params or {}).get("properties") or {}) if isinstance(params, dict) else set()

        def result_of(value: Any, key: str) -> ToolResponse | None:
            if isinstance(value, str) and value.startswith(FIXTURE_REF):
                rel = value[len(FIXTURE_REF):]
                if fixtures is None or rel not in fixtures:
                    known = ", ".join(sorted(fixtures or {})[:8]) or "none"
                    fail(key, f"{value} does not exist (fix the path, relative to fixtures/, or add the file; "
                              f"fixture files: {known}{', ...' if fixtures and len(fixtures) > 8 else ''})")
                    return None
                try:
                    text = fixtures[rel].decode("utf-8")
                except UnicodeDecodeError:
                    fail(key, f"{value} is not UTF-8 text (a tool result is text the model reads)")
                    return None
                return ToolResponse(result=None, text=text)
            return ToolResponse(result=value)

        responses: list[ToolResponse] = []
        raw_responses = raw.get("responses", [])
        if not isinstance(raw_responses, list):
            fail("responses", 'expected a list like [{"when": {"id": "A-1"}, "result": {...}}]')
            raw_responses = []
        for i, r in enumerate(raw_responses):
            key = f"responses[{i}]"
            if not isinstance(r, dict):
                fail(key, 'expected an object {"when": {...}, "result": ...} or {"when": {...}, "error": "text"}')
                continue
            extra = sorted(set(r) - set(_RESPONSE_FIELDS))
            if extra:
                fail(key, f"unknown key {', '.join(map(repr, extra))} (allowed: {', '.join(_RESPONSE_FIELDS)})")
                continue
            if ("result" in r) == ("error" in r):
                fail(key, 'give exactly one of "result" (JSON or "@fixtures/path") and "error" (text)')
                continue
            when = sub(r.get("when", {}), where, f"{key}.when")
            if not isinstance(when, dict):
                fail(f"{key}.when", 'expected an object of argument matchers like {"order_id": "A-1043"}')
                continue
            for arg, matcher in when.items():
                if props and arg not in props:
                    fail(f"{key}.when.{arg}", f"not a parameter of {name or 'this tool'} "
                                              f"(parameters: {', '.join(sorted(props))})")
                why = form_error(matcher)
                if why:
                    fail(f"{key}.when.{arg}", why)
            if "error" in r:
                err = sub(r["error"], where, f"{key}.error")
                if not isinstance(err, str) or not err.strip():
                    fail(f"{key}.error", "expected the error text the model sees")
                    continue
                responses.append(ToolResponse(when=when, error=err))
            else:
                resp = result_of(sub(r["result"], where, f"{key}.result"), f"{key}.result")
                if resp is not None:
                    responses.append(ToolResponse(when=when, result=resp.result, text=resp.text))
        default: ToolResponse | None = None
        if "default" in raw:
            default = result_of(sub(raw["default"], where, "default"), "default")
        elif decoy:
            default = ToolResponse(result=DECOY_DEFAULT)
        fail_first = raw.get("fail_first", 0)
        if isinstance(fail_first, bool) or not isinstance(fail_first, int) or fail_first < 0:
            fail("fail_first", f"expected a whole number >= 0, got {fail_first!r}")
            fail_first = 0
        error_text = sub(raw.get("error_text", SuiteToolSpec.__attrs_attrs__.error_text.default), where, "error_text")
        if not isinstance(error_text, str) or not error_text.strip():
            fail("error_text", "expected the error text the first fail_first calls return")
        destructive = raw.get("destructive", False)
        if not isinstance(destructive, bool):
            fail("destructive", f"expected true or false, got {destructive!r}")
        if bad or name is None:
            continue
        out.append(SuiteToolSpec(
            name=name, description=desc, parameters=params if params is not None else {"type": "object"},
            responses=tuple(responses), default=default, fail_first=fail_first, error_text=error_text,
            destructive=destructive, decoy=decoy, line=lineno,
        ))
    return out


# --------------------------------------------------------------------------- the tool


class DataTool(Tool):
    """A tool whose behaviour is data (a :class:`~hbench.models.SuiteToolSpec`)."""

    def __init__(self, spec: SuiteToolSpec):
        self.spec = spec
        self.name = spec.name  # type: ignore[misc]  # instance values of the Tool class vars
        self.description = spec.description  # type: ignore[misc]
        self.parameters = spec.parameters  # type: ignore[misc]
        self.decoy = spec.decoy
        self.destructive = spec.destructive
        self._validator: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"DataTool({self.name!r})"

    def _check_args(self, args: dict[str, Any]) -> None:
        if self._validator is None:
            with self._lock:
                if self._validator is None:
                    from jsonschema import Draft202012Validator  # heavy: on a data tool's first call

                    self._validator = Draft202012Validator(self.parameters)
        errors = sorted(self._validator.iter_errors(args), key=lambda e: list(e.path))
        if errors:
            e = errors[0]
            at = "/".join(str(p) for p in e.path)
            raise ToolError(f"{self.name}: the arguments do not match its parameters: {e.message}"
                            + (f" (at {at})" if at else ""))

    def call(self, args: dict[str, Any], sandbox: Sandbox | None) -> str:
        spec = self.spec
        state = _attempt_state(sandbox)
        calls = state.setdefault("calls", {})
        calls[self.name] = calls.get(self.name, 0) + 1
        if calls[self.name] <= spec.fail_first:
            raise ToolError(spec.error_text)
        self._check_args(args)
        if spec.destructive:  # record it, never act: the suite decides what the model hears back
            state.setdefault("destructive", []).append({"tool": self.name, "arguments": args})
        for resp in spec.responses:
            if args_match(resp.when, args):
                return self._answer(resp)
        if spec.default is not None:
            return self._answer(spec.default)
        raise ToolError(f"no match: {self.name} found nothing for {describe(args)}")

    def _answer(self, resp: ToolResponse) -> str:
        if resp.error is not None:
            raise ToolError(resp.error)
        if resp.text is not None:
            return resp.text
        return json.dumps(resp.result, ensure_ascii=False)


def _attempt_state(sandbox: Sandbox | None) -> dict[str, Any]:
    """The per-attempt state of data tools, kept on the attempt's sandbox (one per
    attempt), so counts never leak between attempts running in parallel."""
    if sandbox is None:
        return {}
    state = getattr(sandbox, "tool_state", None)
    if state is None:
        state = {}
        sandbox.tool_state = state
    return state


def destructive_calls(sandbox: Sandbox | None) -> list[dict[str, Any]]:
    """The destructive calls recorded (and not acted on) in this sandbox's attempt."""
    return list(_attempt_state(sandbox).get("destructive", []))


# --------------------------------------------------------------------------- tool sets


def build_suite_tools(suite: Suite) -> dict[str, DataTool]:
    """The suite's own tools (``tools.jsonl``) as tool objects, by name, in file order."""
    return {spec.name: DataTool(spec) for spec in suite.tools}


def default_tools(available: Mapping[str, Tool]) -> dict[str, Tool]:
    """The tools a prompt without ``tools`` gets: every registered tool but the decoys."""
    return {n: t for n, t in available.items() if not getattr(t, "decoy", False)}


def _seed(suite_name: str, prompt_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{suite_name}\0{prompt_id}".encode()).digest()[:8], "big")


def choose_decoys(suite_name: str, prompt_id: str, pool: Iterable[str], n: int) -> list[str]:
    """``n`` decoy names from ``pool``, the same for the same suite, prompt and pool."""
    names = sorted(set(pool))
    if n <= 0:
        return []
    if n > len(names):
        raise ValueError(f"{n} decoys asked for, {len(names)} available")
    return random.Random(_seed(suite_name, prompt_id)).sample(names, n)


def offered_tools(
    suite: Suite, prompt: Prompt, available: Mapping[str, Tool], suite_tools: Mapping[str, Tool] | None = None
) -> dict[str, Tool]:
    """The tools one prompt offers, in the order the model sees them.

    ``available`` is every registered tool (decoys included); ``suite_tools`` the suite's
    own (:func:`build_suite_tools`). Without ``tools`` a prompt gets :func:`default_tools`;
    with ``decoys: N`` it also gets N decoys (:func:`choose_decoys`), shuffled in among the
    others with the same seed. Raises KeyError for a name neither knows (the suite
    validator reports that first).
    """
    suite_tools = suite_tools or {}
    if prompt.tools is None:
        chosen: dict[str, Tool] = default_tools(available)
    else:
        chosen = {}
        for name in prompt.tools:
            tool = suite_tools.get(name) or available.get(name)
            if tool is None:
                raise KeyError(f"prompt {prompt.id!r}: unknown tool {name!r}")
            chosen[name] = tool
    if prompt.decoys:
        pool = [n for n, t in available.items() if getattr(t, "decoy", False) and n not in chosen]
        names = list(chosen) + choose_decoys(suite.name, prompt.id, pool, prompt.decoys)
        random.Random(_seed(suite.name, prompt.id) ^ 0x5EED).shuffle(names)
        return {n: chosen.get(n) or available[n] for n in names}
    return chosen


def load_catalogue(path: str | Path, *, check_schemas: bool = False) -> list[SuiteToolSpec]:
    """A decoy catalogue file (``tools.jsonl`` lines: name, description, parameters,
    optional default) as decoy specs. Raises ValueError listing every problem as
    ``file:line: key: message``. Schemas are checked when ``check_schemas`` (that imports
    jsonschema: the plugin registration path leaves it to the suite validator and tests)."""
    path = Path(path)
    rows: list[tuple[int, dict[str, Any]]] = []
    problems: list[str] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{path}:{lineno}: not valid JSON: {exc.msg} at column {exc.colno}")
            continue
        if not isinstance(obj, dict):
            problems.append(f"{path}:{lineno}: expected a JSON object (one tool per line)")
            continue
        rows.append((lineno, obj))

    def problem(where: str, key: str | None, msg: str) -> None:
        where = f"{path.parent / where}"
        problems.append(f"{where}: {key}: {msg}" if key else f"{where}: {msg}")

    specs = parse_tool_rows(rows, path.name, problem, decoy=True, check_schemas=check_schemas)
    if problems:
        raise ValueError("\n".join(problems))
    return specs


def decoy_names(available: Mapping[str, Tool]) -> list[str]:
    """Every registered decoy tool."""
    return sorted(n for n, t in available.items() if getattr(t, "decoy", False))
