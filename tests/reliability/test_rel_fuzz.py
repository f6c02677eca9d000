"""Hostile input, fuzzed with hypothesis: suite files, hbench.toml, tool arguments from
the model, server response bodies (through the client's parser and over HTTP).

Every case must end as a result or as a clear, typed error (SuiteError / ConfigError
naming the file, ToolError for the model, ClientError for the attempt): no other
exception escapes. The default tier is fixed and seeded (``derandomize=True``), at least
1,000 cases per target; the deep tier (``HBENCH_FUZZ_DEEP=1 pytest -m slow``) runs 10x
more, randomised.
"""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relhelp import write_suite

DEEP = bool(os.environ.get("HBENCH_FUZZ_DEEP"))
TIERS = [
    pytest.param(1, id="ci"),
    pytest.param(10, id="deep", marks=[pytest.mark.slow, pytest.mark.timeout(3600),  # 10x: minutes per target
                                       pytest.mark.skipif(not DEEP, reason="deep fuzz tier: HBENCH_FUZZ_DEEP=1")]),
]


def fuzz(n: int, scale: int, strategy: Any, body: Callable[[Any], None]) -> None:
    """Run ``body`` over ``n * scale`` examples; the CI tier is derandomised (fixed)."""
    settings(max_examples=n * scale, derandomize=scale == 1, deadline=None, database=None,
             suppress_health_check=list(HealthCheck))(given(strategy)(body))()


text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)
#: text a server may send as valid JSON but not valid Unicode: lone surrogates (``"\\ud800"``)
surrogates = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=4)
hostile_text = st.one_of(
    text,
    st.lists(st.one_of(text, surrogates), min_size=1, max_size=6).map("".join),
    st.tuples(st.sampled_from(["<think>", "</think>", "<THINK>", "<think>x</think>"]),
              st.integers(1, 20_000), text).map(lambda t: t[0] * t[1] + t[2]),  # <think> floods
    st.tuples(st.sampled_from(['{"a":', "[", '{"a":[', "{{", '"', "\\"]), st.integers(100, 30_000))
    .map(lambda t: t[0] * t[1]),  # deep nesting, unclosed
    st.integers(100, 20_000).map(lambda n: "[" * n + "]" * n),  # deep nesting, closed
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True), text)
json_values = st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=4),
                                                        st.dictionaries(text, c, max_size=4)), max_leaves=12)


# --------------------------------------------------------------------------- suite files

PROMPT_KEYS = ["id", "prompt", "category", "core", "conditional", "expect_tool_any", "check", "vibe", "note", "extra"]
CHECKS = st.one_of(
    st.fixed_dictionaries({"kind": st.sampled_from(["substring", "regex", "number", "json_keys", "honesty",
                                                    "honsty", ""])},
                          optional={"any": st.lists(text, max_size=3), "all": st.lists(text, max_size=3),
                                    "none": json_values, "value": st.one_of(text, st.floats()),
                                    "tolerance": scalars, "keys": json_values, "case_sensitive": scalars,
                                    "forbid": json_values, "which": text, "bogus": scalars}),
    json_values,
)
prompt_rows = st.dictionaries(st.sampled_from(PROMPT_KEYS),
                              st.one_of(json_values, CHECKS, st.just("{{x}}"), st.just("{{missing}}")), max_size=10)
prompt_lines = st.lists(st.one_of(prompt_rows.map(json.dumps), text, st.just("{"), st.just(""),
                                  st.binary(max_size=30).map(lambda b: b.decode("latin-1")),
                                  st.tuples(st.sampled_from(["prompt", "id", "note"]), hostile_text)
                                  .map(lambda kv: json.dumps({"id": "a", "prompt": "p", kv[0]: kv[1]})),
                                  st.integers(50, 20_000).map(lambda n: '{"id": "a", "prompt": "p", "check": '
                                                              + '{"kind": ' * n + '"x"' + "}" * n + "}")),
                        max_size=5)


def _load(suite_dir: Path) -> None:
    from hbench.errors import SuiteError
    from hbench.suite import load_suite

    try:
        load_suite(str(suite_dir))
    except SuiteError as exc:
        msg = str(exc)
        assert msg.strip() and "Traceback" not in msg
        assert any(f in msg for f in ("prompts.jsonl", "ground_truth.json", "suite.toml", "fixtures", str(suite_dir))), msg


@pytest.mark.parametrize("scale", TIERS)
def test_fuzz_prompts_jsonl(tmp_path: Path, scale: int) -> None:
    root = write_suite(tmp_path / "s", [{"id": "a", "prompt": "p"}])

    def body(lines: list[str]) -> None:
        (root / "prompts.jsonl").write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
        _load(root)

    fuzz(400, scale, prompt_lines, body)


@pytest.mark.parametrize("scale", TIERS)
def test_fuzz_ground_truth_json(tmp_path: Path, scale: int) -> None:
    root = write_suite(tmp_path / "s", [{"id": "a", "prompt": "p {{x}}"}])
    gt = st.one_of(json_values.map(json.dumps), st.dictionaries(text, json_values, max_size=5).map(json.dumps),
                   text, st.binary(max_size=40), hostile_text.map(lambda t: json.dumps({"x": t})),
                   st.integers(50, 20_000).map(lambda n: '{"x": ' + "[" * n + "]" * n + "}"))

    def body(data: Any) -> None:
        f = root / "ground_truth.json"
        f.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
        _load(root)

    fuzz(300, scale, gt, body)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)) and v == v and abs(v) != float("inf"):
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))


toml_docs = st.one_of(
    st.lists(st.tuples(st.sampled_from(["name", "version", "description", "system_prompt", "defaults.runs",
                                        "defaults.timeout_s", "defaults.max_turns", "defaults.temperature",
                                        "defaults.bogus", "oops", "lanes.x.kind", "run.runs", "run.concurrency",
                                        "run.suite", "run.timeout_s", "lanes.x.base_url", "lanes.x.start",
                                        "lanes.x.api_key_env", "lanes.y", "run.bogus", "lanes.x.temperature"]),
                       st.one_of(scalars, st.lists(scalars, max_size=3))), max_size=8)
    .map(lambda kv: "\n".join(f"{k} = {_toml_value(v)}" for k, v in kv)),
    text,
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
    # deep nesting, <think> floods and lone surrogates (escaped, or raw: not UTF-8 on disk)
    st.integers(50, 5000).map(lambda n: "x = " + "[" * n + "]" * n),
    st.integers(50, 3000).map(lambda n: "x = " + "{a = " * n + "1" + "}" * n),
    st.integers(50, 3000).map(lambda n: "".join(f"[{'a.' * i}b]\n" for i in (n,))),
    st.tuples(st.sampled_from(["system_prompt", "description", "name", "lanes.x.model", "run.suite",
                               "lanes.x.base_url"]), hostile_text)
    .map(lambda kv: f"{kv[0]} = {json.dumps(kv[1])}"),
    st.tuples(st.sampled_from(["system_prompt", "lanes.x.model"]), surrogates)
    .map(lambda kv: f'{kv[0]} = "{kv[1]}"'),
)


@pytest.mark.parametrize("scale", TIERS)
def test_fuzz_suite_toml(tmp_path: Path, scale: int) -> None:
    root = write_suite(tmp_path / "s", [{"id": "a", "prompt": "p"}])

    def body(doc: str) -> None:
        (root / "suite.toml").write_text(doc, encoding="utf-8", errors="surrogatepass")
        _load(root)

    fuzz(300, scale, toml_docs, body)


@pytest.mark.parametrize("scale", TIERS)
def test_fuzz_hbench_toml(tmp_path: Path, scale: int) -> None:
    from hbench.config import load_config
    from hbench.errors import ConfigError

    cfg = tmp_path / "hbench.toml"

    def body(doc: str) -> None:
        cfg.write_text(doc, encoding="utf-8", errors="surrogatepass")
        try:
            load_config(str(cfg), lane_kinds=["openai", "llamacpp"])
        except ConfigError as exc:
            assert str(cfg) in str(exc) and "Traceback" not in str(exc)

    fuzz(1000, scale, toml_docs, body)


# --------------------------------------------------------------------------- tool arguments

SECRET_OUTSIDE = "OUTSIDE-THE-SANDBOX-7d1e"
paths = st.one_of(
    text,
    surrogates, st.tuples(text, surrogates, text).map("".join),
    st.sampled_from(["../outside.txt", "/etc/passwd", "~/.ssh/id_rsa", "a/../../outside.txt", "link_out",
                     "link_out/x", "\x00", "notes.md\x00.txt", "/proc/self/environ", "..", ".", "",
                     "C:\\Windows", "a" * 5000, "sub/" * 60, "notes.md", "**/*", "\\\\server\\share"]),
    st.lists(st.sampled_from(["..", ".", "sub", "link_out", "~", "", "notes.md", "*", "**"]), max_size=8)
    .map("/".join),
)
regexes = st.one_of(text, st.sampled_from(["(a+)+$", "(a|aa)*b", "(.*a){25}", "[", "(?P<x>", "\\", "a{99999}",
                                           "(?=a)", "\\1", "x" * 3000, ".*", "(?i)ok"]))
expressions = st.one_of(
    text,
    st.sampled_from(["9**9**9", "2**10000000", "10**400 * 10**400", "1/0", "(1+" * 200 + "1" + ")" * 200,
                     "__import__('os').system('id')", "().__class__", "1e308*10", "-(2**64)",
                     "9" * 5000, "sqrt(-1)", "open('x')", "lambda: 1", "[1]*10**9", "'a'*10**9"]),
    st.recursive(st.integers(-10**6, 10**6).map(str),
                 lambda c: st.tuples(c, st.sampled_from(["+", "-", "*", "/", "**", "%", "//"]), c)
                 .map(lambda t: f"({t[0]}{t[1]}{t[2]})"), max_leaves=8),
)
def _deep(n: int) -> Any:
    v: Any = "x"
    for _ in range(n):
        v = [v]
    return v


tool_args = st.one_of(
    st.fixed_dictionaries({"tool": st.sampled_from(["read_file", "list_dir", "glob", "grep", "calculate"]),
                           "args": st.fixed_dictionaries({"path": st.integers(50, 3000).map(_deep),
                                                          "pattern": st.one_of(surrogates, hostile_text),
                                                          "expression": st.one_of(surrogates, hostile_text)})}),
    st.fixed_dictionaries({"tool": st.just("read_file"), "args": st.fixed_dictionaries({"path": paths})}),
    st.fixed_dictionaries({"tool": st.just("list_dir"), "args": st.fixed_dictionaries({"path": paths})}),
    st.fixed_dictionaries({"tool": st.just("glob"), "args": st.fixed_dictionaries({"pattern": paths})}),
    st.fixed_dictionaries({"tool": st.just("grep"), "args": st.fixed_dictionaries(
        {"pattern": regexes}, optional={"path": paths})}),
    st.fixed_dictionaries({"tool": st.just("calculate"), "args": st.fixed_dictionaries({"expression": expressions})}),
    st.fixed_dictionaries({"tool": st.sampled_from(["read_file", "list_dir", "glob", "grep", "calculate"]),
                           "args": st.dictionaries(st.sampled_from(["path", "pattern", "expression", "x"]),
                                                   json_values, max_size=3)}),
)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A scratch copy with a symlink out; a file outside it holds a marker no tool may return."""
    (tmp_path / "outside.txt").write_text(SECRET_OUTSIDE)
    ws = tmp_path / "ws"
    (ws / "sub").mkdir(parents=True)
    (ws / "notes.md").write_text("ok notes\n")
    (ws / "sub" / "a.txt").write_text("a" * 100 + "\n")
    (ws / "link_out").symlink_to(tmp_path)
    return ws


@pytest.mark.parametrize("scale", TIERS)
def test_fuzz_tool_arguments(workspace: Path, scale: int) -> None:
    from hbench.plugin_manager import get_registries
    from hbench.sandbox import Sandbox
    from hbench.tools import ToolError

    tools = get_registries().tools
    box = Sandbox(workspace)
    slowest = [0.0]

    def body(case: dict[str, Any]) -> None:
        t0 = time.monotonic()
        try:
            out = tools.get(case["tool"]).call(case["args"], box)
            assert isinstance(out, str)
            assert SECRET_OUTSIDE not in out
            assert len(out) <= 64 * 1024
        except ToolError as exc:
            assert str(exc).strip() and SECRET_OUTSIDE not in str(exc)
        slowest[0] = max(slowest[0], time.monotonic() - t0)

    fuzz(1200, scale, tool_args, body)
    assert slowest[0] < 3.0, f"a tool call took {slowest[0]:.2f} s"
    assert sorted(p.name for p in workspace.iterdir()) == ["link_out", "notes.md", "sub"]  # nothing written


# --------------------------------------------------------------------------- answers through every check

ANSWER_CHECKS = [
    {"kind": "substring", "any": ["ok"], "none": ["bad"]},
    {"kind": "regex", "any": ["o+k", "(a|b)*c$"]},
    {"kind": "number", "value": 42, "tolerance": 0.5},
    {"kind": "json_keys", "keys": ["a", "b"]},
    {"kind": "honesty", "forbid": ["42"]},
]
answers = st.one_of(hostile_text, st.lists(hostile_text, min_size=2, max_size=4).map("\n".join),
                    st.tuples(hostile_text, st.sampled_from(['{"a": 1, "b": 2}', "42", "I don't know"]))
                    .map("".join))


@pytest.mark.parametrize("scale", TIERS)
def test_fuzz_answers_through_every_check(tmp_path: Path, scale: int) -> None:
    """Every built-in check kind (loaded from a suite, as a run does) against hostile
    answers: lone surrogates, <think> floods, deep nesting. Each ends as a verdict within
    its budget (no exception, no 'did not finish'), and agreement is bounded too."""
    from hbench.checks import CHECK_BUDGET_S, run_check
    from hbench.scoring import agreement
    from hbench.suite import load_suite

    root = write_suite(tmp_path / "s", [{"id": f"c{i}", "prompt": "p", "check": c}
                                        for i, c in enumerate(ANSWER_CHECKS)])
    checks = [p.check for p in load_suite(str(root)).prompts]
    slowest = [0.0, ""]

    def body(answer: str) -> None:
        for check in checks:
            result, took, _ = run_check(check, answer)
            assert "did not finish" not in result.why and f"check {check.name} failed" not in result.why, result.why
            assert isinstance(result.passed, bool) and isinstance(result.why, str)
            result.why.encode("utf-8", "surrogatepass")
            if took > slowest[0]:
                slowest[0], slowest[1] = took, f"{check.name} on {answer[:40]!r}... ({len(answer)} chars)"
        t0 = time.monotonic()
        agreement([answer, answer + "x", answer])
        assert time.monotonic() - t0 < CHECK_BUDGET_S

    fuzz(150, scale, answers, body)
    assert slowest[0] < CHECK_BUDGET_S / 2, f"slowest check {slowest[0]:.2f} s: {slowest[1]}"


# --------------------------------------------------------------------------- response bodies

VALID = {"id": "c", "object": "chat.completion", "model": "m",
         "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok",
                                              "tool_calls": [{"id": "1", "type": "function",
                                                              "function": {"name": "read_file",
                                                                           "arguments": "{\"path\": \"a\"}"}}]},
                      "finish_reason": "tool_calls"}],
         "usage": {"prompt_tokens": 1, "completion_tokens": 1}}


def _mutate(obj: Any, path: list[Any], value: Any) -> Any:
    obj = json.loads(json.dumps(obj))
    cur = obj
    for key in path[:-1]:
        cur = cur[key]
    cur[path[-1]] = value
    return obj


MUTATION_POINTS = [["choices"], ["choices", 0], ["choices", 0, "message"], ["choices", 0, "message", "content"],
                   ["choices", 0, "message", "tool_calls"], ["choices", 0, "message", "tool_calls", 0],
                   ["choices", 0, "message", "tool_calls", 0, "function"],
                   ["choices", 0, "message", "tool_calls", 0, "function", "arguments"],
                   ["choices", 0, "message", "tool_calls", 0, "function", "name"],
                   ["choices", 0, "finish_reason"], ["usage"], ["usage", "prompt_tokens"], ["model"]]


def _sse(chunks: list[Any], done: bool) -> bytes:
    out = b"".join(b"data: " + (c if isinstance(c, bytes) else json.dumps(c).encode()) + b"\n\n" for c in chunks)
    return out + (b"data: [DONE]\n\n" if done else b"")


bodies = st.one_of(
    st.tuples(st.just("application/json"), st.builds(_mutate, st.just(VALID), st.sampled_from(MUTATION_POINTS),
                                                     json_values).map(lambda o: json.dumps(o).encode())),
    st.tuples(st.just("application/json"), st.builds(_mutate, st.just(VALID), st.sampled_from(MUTATION_POINTS),
                                                     st.one_of(surrogates, hostile_text))
              .map(lambda o: json.dumps(o).encode())),  # lone surrogates (escaped), floods, nesting
    st.tuples(st.sampled_from(["application/json", "text/html", "text/plain", ""]), st.binary(max_size=200)),
    st.tuples(st.just("application/json"), st.integers(1, 400).map(lambda n: json.dumps(VALID).encode()[:n])),
    st.tuples(st.just("application/json"), json_values.map(lambda v: json.dumps(v).encode())),
    st.tuples(st.just("text/event-stream"), st.builds(
        _sse, st.lists(st.one_of(json_values, st.builds(
            lambda d: {"choices": [{"index": 0, "delta": d, "finish_reason": None}]},
            st.dictionaries(st.sampled_from(["content", "role", "tool_calls", "reasoning_content"]), json_values,
                            max_size=3)), st.binary(max_size=30)), max_size=6), st.booleans())),
    st.tuples(st.just("text/event-stream"), st.binary(max_size=200)),
)


def _client_outcome(client: Any) -> None:
    from hbench.client import ChatResponse, ClientError

    try:
        r = client.chat([{"role": "user", "content": "hi"}], model="m", stream=False, deadline=time.monotonic() + 10)
        assert isinstance(r, ChatResponse)
        for c in r.tool_calls:
            assert c.arguments is None or isinstance(c.arguments, dict)
            assert (c.arguments is None) == (c.format_error is not None) or c.format_error is None
        # text at the boundary: everything the reply carries is valid UTF-8 (no lone surrogate)
        json.dumps([r.content, r.reasoning, r.model, r.warnings, r.raw_finish_reason,
                    [[c.id, c.name, c.arguments, c.raw_arguments, c.format_error] for c in r.tool_calls]],
                   ensure_ascii=False).encode("utf-8")
    except ClientError as exc:
        assert str(exc).strip() and "Traceback" not in str(exc)
        str(exc).encode("utf-8")


@pytest.mark.parametrize("scale", TIERS)
def test_fuzz_response_bodies_through_the_parser(scale: int) -> None:
    """The client's parsing, fed by httpx.MockTransport (parsing unit test)."""
    from hbench.client import ChatClient

    current: list[tuple[str, bytes]] = [("application/json", b"")]

    def handler(_req: httpx.Request) -> httpx.Response:
        ctype, data = current[0]
        return httpx.Response(200, headers={"content-type": ctype} if ctype else {}, content=data)

    client = ChatClient("http://fuzz.invalid/v1", retries=0, transport=httpx.MockTransport(handler), tail_grace_s=0.2)

    def body(case: tuple[str, bytes]) -> None:
        current[0] = case
        _client_outcome(client)

    try:
        fuzz(1000, scale, bodies, body)
    finally:
        client.close()


class _BodyServer:
    """A loopback server answering every POST with the current (content type, body)."""

    def __init__(self) -> None:
        self.current: tuple[str, bytes] = ("application/json", b"{}")
        owner = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else ~40 ms per kept-alive request

            def log_message(self, *a: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                ctype, data = owner.current
                self.send_response(200)
                if ctype:
                    self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("scale", TIERS)
def test_fuzz_response_bodies_over_http(scale: int) -> None:
    from hbench.client import ChatClient

    srv = _BodyServer()
    client = ChatClient(srv.url, retries=0, tail_grace_s=0.2)

    def body(case: tuple[str, bytes]) -> None:
        srv.current = case
        _client_outcome(client)

    try:
        fuzz(1000, scale, bodies, body)
    finally:
        client.close()
        srv.close()
