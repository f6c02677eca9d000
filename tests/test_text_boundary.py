"""Text at the boundary: lone surrogates (valid JSON: ``"\\ud800"``) from a real server
become U+FFFD where the client decodes them, in content, tool names and tool arguments,
streamed or not; the journal and every report stay valid UTF-8; ``--resume`` goes past;
tools refuse a lone-surrogate path with a tool error."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hbench.client import ChatClient
from hbench.testing import ScriptedServer, answer, call
from hbench.text import valid_json, valid_text

sys.path.insert(0, str(Path(__file__).parent / "reliability"))
from relhelp import read_journal, run_inproc, write_suite  # noqa: E402

LONE = "\ud800"
FFFD = "\ufffd"


def _encodable(value: object) -> None:
    json.dumps(value, ensure_ascii=False).encode("utf-8")  # raises on a surrogate


# --------------------------------------------------------------------------- the helpers


def test_valid_text_replaces_lone_and_joins_split_pairs():
    assert valid_text("a\ud800b") == f"a{FFFD}b"
    assert valid_text("x\udfff") == f"x{FFFD}"
    assert valid_text("\ud83d" + "\ude00") == "\U0001F600"  # a pair that arrived in two pieces
    assert valid_text("plain é 😀") == "plain é 😀"


@given(st.recursive(st.one_of(st.text(), st.integers(), st.none()),
                    lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(), c, max_size=3)),
                    max_leaves=10))
def test_valid_json_makes_every_string_encodable(value):
    out = valid_json(value)
    _encodable(out)
    if not any(0xD800 <= ord(ch) <= 0xDFFF for ch in json.dumps(value, ensure_ascii=False)):
        assert out == value  # nothing to fix: unchanged


# --------------------------------------------------------------------------- the client


@pytest.mark.parametrize("stream", [True, False])
def test_client_turns_lone_surrogates_into_fffd(stream: bool):
    scripts = {"surrogate": [call(f"read{LONE}_file", {"path": f"notes{LONE}.md", f"k{LONE}": [LONE]}),
                             answer(f"the answer {LONE} is \ud83d\ude00 ok {LONE}")]}
    with ScriptedServer(scripts) as srv, ChatClient(srv.url, retries=0) as client:
        msgs = [{"role": "user", "content": "surrogate"}]
        tools = [{"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}]
        r1 = client.chat(msgs, model="scripted-model", tools=tools, stream=stream, deadline=time.monotonic() + 10)
        tc = r1.tool_calls[0]
        assert tc.name == f"read{FFFD}_file"
        assert tc.arguments == {"path": f"notes{FFFD}.md", f"k{FFFD}": [FFFD]}
        _encodable([tc.name, tc.arguments, tc.raw_arguments, r1.assistant_message()])
        msgs.append(r1.assistant_message())  # replayable: the next request encodes
        msgs.append({"role": "tool", "tool_call_id": tc.id, "content": "x"})
        r2 = client.chat(msgs, model="scripted-model", tools=tools, stream=stream, deadline=time.monotonic() + 10)
    assert r2.content == f"the answer {FFFD} is \U0001F600 ok {FFFD}"


# --------------------------------------------------------------------------- a whole run


def test_run_with_lone_surrogates_everywhere_journals_and_resumes(tmp_path: Path):
    suite = write_suite(tmp_path / "s", [
        {"id": "ans", "prompt": "answer with a surrogate", "check": {"kind": "substring", "any": ["ok"]}},
        {"id": "tool", "prompt": "call a tool with a surrogate", "expect_tool_any": ["read"]},
    ], runs=2)
    scripts = {
        "answer with a surrogate": [answer(f"ok {LONE} \udfff done")],
        "call a tool with a surrogate": [call("read_file", path=f"notes{LONE}.md"),
                                         call(f"read_file{LONE}", path="notes.md"), answer(f"ok {LONE}")],
    }
    out = tmp_path / "out"
    with ScriptedServer(scripts) as srv:
        res = run_inproc(out, suite, srv.url)
        assert res.exit_code == 0
        for f in out.rglob("*"):
            if f.is_file() and f.suffix in (".jsonl", ".json", ".md", ".html"):
                f.read_bytes().decode("utf-8")  # strict: valid UTF-8 everywhere
        atts = {(r["prompt_id"], r["n"]): r["attempt"] for r in read_journal(out / "journal.jsonl")
                if r["type"] == "attempt"}
        assert len(atts) == 4
        a = atts[("ans", 1)]
        assert a["answer"] == f"ok {FFFD} {FFFD} done" and a["passed"] and not a["error"]
        t = atts[("tool", 1)]
        assert not t["error"], t["error"]  # never "agent crashed"
        names = [c["name"] for c in t["tool_calls"]]
        assert names == ["read_file", f"read_file{FFFD}"]
        assert t["tool_calls"][0]["arguments"] == {"path": f"notes{FFFD}.md"}
        n_requests = len(srv.chat_requests)
        again = run_inproc(out, suite, srv.url, resume=True)
        assert again.exit_code == 0 and len(srv.chat_requests) <= n_requests + 3  # only the throughput probe
    assert sum(p.passes for p in again.scorecards[0].prompts) == sum(p.passes for p in res.scorecards[0].prompts)


def test_resume_reads_a_journal_written_with_escaped_surrogates(tmp_path: Path):
    """A journal line holding ``\\ud800`` escapes (another tool, an older hbench) is made
    valid when read back, so the resumed run's reports can be written."""
    from hbench.journal import completed

    suite = write_suite(tmp_path / "s", [{"id": "a", "prompt": "plain"}], runs=1)
    out = tmp_path / "out"
    with ScriptedServer({"plain": [answer("ok fine")]}) as srv:
        assert run_inproc(out, suite, srv.url).exit_code == 0
        lines = (out / "journal.jsonl").read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            rec = json.loads(line)
            if rec["type"] == "attempt":
                rec["attempt"]["answer"] = f"ok {LONE}"
                lines[i] = json.dumps(rec)  # ensure_ascii: the surrogate as an escape
        (out / "journal.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        att = next(iter(completed(out / "journal.jsonl", "scripted-model").values()))
        assert att.answer == f"ok {FFFD}"
        res = run_inproc(out, suite, srv.url, resume=True)
    assert res.exit_code == 0
    (out / "summary.md").read_bytes().decode("utf-8")


# --------------------------------------------------------------------------- tools


@pytest.mark.parametrize(("tool", "args"), [
    ("read_file", {"path": f"notes{LONE}.md"}),
    ("list_dir", {"path": f"sub{LONE}"}),
    ("glob", {"pattern": f"**/*{LONE}"}),
    ("grep", {"pattern": f"a{LONE}"}),
    ("grep", {"pattern": "a", "path": f"sub{LONE}"}),
])
def test_tools_refuse_lone_surrogates_with_a_tool_error(tmp_path: Path, tool: str, args: dict):
    from hbench.plugin_manager import get_registries
    from hbench.sandbox import Sandbox
    from hbench.tools import ToolError

    (tmp_path / "sub").mkdir()
    (tmp_path / "notes.md").write_text("a\n")
    with pytest.raises(ToolError, match="surrogate"):
        get_registries().tools.get(tool).call(args, Sandbox(tmp_path))
