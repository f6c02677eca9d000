"""Issue 15: size and nesting limits on every parser input. Deep nesting in a config,
a suite file (tests/test_config.py, tests/test_suite_roots.py), a scorecard given to
``hbench report`` or a server's tool-call arguments is one line naming the file (or a
format error the model sees), never a RecursionError traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hbench.cli import main
from hbench.tool_calls import ARGS_MAX_DEPTH, parse_arguments
from hbench.limits import MAX_DEPTH, LimitError, check_depth, depth, loads_json, loads_toml, read_limited
from hbench.report import ScorecardError, load_scorecard


def nested(n: int, leaf=1):  # noqa: ANN001, ANN201
    v = leaf
    for i in range(n):
        v = [v] if i % 2 else {"k": v}
    return v


def rec_depth(v) -> int:  # noqa: ANN001 - the obvious recursive definition, for small values
    if isinstance(v, dict):
        return 1 + max((rec_depth(x) for x in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((rec_depth(x) for x in v), default=0)
    return 0


json_values = st.recursive(st.none() | st.integers() | st.text(max_size=3),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                           max_leaves=30)


@given(json_values)
def test_depth_equals_the_recursive_definition(v):
    assert depth(v) == rec_depth(v)


@given(json_values, st.integers(0, 8))
def test_depth_stops_counting_past_the_limit(v, limit):
    assert depth(v, limit) == min(rec_depth(v), limit + 1)


def test_depth_is_not_recursive():
    assert depth(nested(100_000)) == MAX_DEPTH + 1
    with pytest.raises(LimitError, match="nested deeper than 100 levels"):
        check_depth(nested(101))
    assert check_depth(nested(100)) == nested(100)


def test_loads_refuse_deep_input_in_one_line():
    for text in ("[" * 100_000 + "]" * 100_000, "[" * 101 + "]" * 101):
        with pytest.raises(LimitError):
            loads_json(text)
    assert loads_json("[" * 100 + "]" * 100) is not None
    with pytest.raises(LimitError):
        loads_toml("x = " + "[" * 5000 + "]" * 5000)
    with pytest.raises(json.JSONDecodeError):  # not valid: the caller shows line and column
        loads_json("{")


def test_read_limited(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"x" * 100)
    assert read_limited(p, 100) == b"x" * 100
    with pytest.raises(LimitError, match="100 bytes is larger than the 99 bytes"):
        read_limited(p, 99)


def test_a_deep_scorecard_given_to_report_is_one_line_naming_the_file(tmp_path, capsys):
    # before: RecursionError traceback from `hbench report`
    for n in (100_000, 150):
        p = tmp_path / "lane.json"
        p.write_text('{"schema": "hbench.scorecard/1", "x": ' + "[" * n + "]" * n + "}")
        with pytest.raises(ScorecardError) as exc:
            load_scorecard(p)
        assert str(exc.value) == f"{p}: nested deeper than 100 levels (flatten it)"
        with pytest.raises(SystemExit) as code:
            main(["report", str(p), "--out", str(tmp_path / "rep")])
        assert code.value.code == 2
        err = capsys.readouterr().err
        assert "nested deeper than 100 levels" in err and "Traceback" not in err


def test_deep_tool_arguments_are_a_format_error_for_the_model():
    deep = nested(ARGS_MAX_DEPTH + 5)
    args, raw, error = parse_arguments({"path": deep}, "read_file")
    assert args is None and "nested deeper than 32 levels" in error
    text = json.dumps({"path": deep})
    args, raw, error = parse_arguments(text, "read_file")
    assert args is None and raw == text and "nested deeper than 32 levels" in error
    args, raw, error = parse_arguments(json.dumps(text), "read_file")  # encoded twice
    assert args is None and "nested deeper" in error
    args, raw, error = parse_arguments("[" * 200_000 + "]" * 200_000, "read_file")
    assert args is None and "nested too deeply" in error
    ok = {"path": nested(ARGS_MAX_DEPTH - 1)}
    assert parse_arguments(ok, "read_file")[0] == ok


def test_a_deep_tool_call_from_the_server_is_a_format_error_not_a_crash(scripted_server, tmp_path: Path):
    from hbench.runner import RunOptions, run
    from hbench.testing import answer, call

    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "suite.toml").write_text('name = "mini"\nversion = "1"\nsystem_prompt = "Use the tools."\n')
    (suite / "ground_truth.json").write_text("{}")
    (suite / "prompts.jsonl").write_text(json.dumps(
        {"id": "p", "prompt": "Read it.", "check": {"kind": "substring", "any": ["done"]}}) + "\n")
    srv = scripted_server({"Read it": [call("read_file", {"path": nested(900)}), answer("done")]})
    result = run(RunOptions(suite=str(suite), lane_url=srv.url, model="m", runs=1, out=str(tmp_path / "out"),
                            report="json", progress=False))
    assert result.exit_code == 0
    (sc,) = result.scorecards
    assert sc.format_error_rate == 1.0


def test_a_deep_journal_line_is_a_corrupt_line_error_not_a_recursion_error(tmp_path):
    from hbench.journal import JournalError, iter_records

    p = tmp_path / "journal.jsonl"
    p.write_text('{"type": "header", "schema": "hbench.journal/1"}\n'
                 '{"type": "attempt", "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n"
                 '{"type": "attempt"}\n')
    with pytest.raises(JournalError, match=rf"{p}:2: corrupt journal line"):
        list(iter_records(p))


def test_the_html_report_skips_a_deep_journal_line(tmp_path):
    from hbench.plugins.reporters.report_html import read_journal

    p = tmp_path / "journal.jsonl"
    good = {"type": "attempt", "attempt": {"lane": "l", "prompt_id": "p", "n": 1, "answer": "a"}}
    p.write_text(json.dumps(good) + "\n" + '{"type": "attempt", "attempt": ' + "[" * 100_000 + "]" * 100_000
                 + "}\n" + json.dumps(dict(good, attempt=dict(good["attempt"], n=2, x=nested(300)))) + "\n")
    assert list(read_journal(p)) == [("l", "p", 1)]


# --------------------------------------------------------------------------- server bodies


class _DeepServer:
    """A real HTTP server on 127.0.0.1 whose every JSON answer nests 100,000 levels deep (past
    Python's recursion limit: json.loads raises RecursionError, not ValueError)."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        d = "[" * 100_000 + "]" * 100_000
        deep = ('{"data": [{"id": "m", "x": %s}], "choices": [{"message": {"content": "ok", "x": %s}}], '
                '"error": %s, "n_ctx": 4096}' % (d, d, d)).encode()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # noqa: ANN002, ANN202
                pass

            def _answer(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(deep)))
                self.end_headers()
                self.wfile.write(deep)

            do_GET = do_POST = _answer  # noqa: N815

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def deep_server():
    srv = _DeepServer()
    yield srv
    srv.close()


def test_deep_server_bodies_are_answers_that_are_not_json_never_a_recursion_error(deep_server, capsys):
    import httpx

    from hbench.client import ChatClient, ServerReplyError
    from hbench.models import LaneSpec
    from hbench.plugin_manager import get_registries

    with ChatClient(deep_server.url) as client:
        with pytest.raises(ServerReplyError, match="/models is not an OpenAI model list"):
            client.models()
    kinds = get_registries().lane_kinds
    lane = LaneSpec(name="deep", kind="llamacpp", base_url=deep_server.url, model="m")
    with httpx.Client(timeout=10) as http:
        assert kinds.get("openai").served_model(lane, http) is None
        kinds.get("llamacpp").context_length(lane, http)  # falls back, no exception
        assert kinds.get("ollama").context_length(attrs_evolve(lane, kind="ollama"), http) is None
    # hbench doctor: every finding, and a non-zero exit, never a traceback
    with pytest.raises(SystemExit):
        main(["doctor", "--lane-url", deep_server.url, "--model", "m", "--wait", "2", "--out", "unused"])
    err = capsys.readouterr().err
    assert "Traceback" not in err and "RecursionError" not in err


def attrs_evolve(obj, **kw):  # noqa: ANN001, ANN003, ANN201
    import attrs

    return attrs.evolve(obj, **kw)
