"""Sandbox escape table: every attempt is refused or bounded in time and memory, and
nothing outside the scratch folder is read or written."""

from __future__ import annotations

import os
import time
import tracemalloc
from pathlib import Path

import pytest

from hbench.testing import ScriptedServer, answer, calls
from relhelp import attempts_of, read_journal, run_inproc, write_suite

MARK = "OUTSIDE-MARKER-c41b"
HUGE = 200 * 1024 * 1024  # sparse: costs no disk


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """A scratch folder holding every hostile thing a fixture tree or a prior tool could plant."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text(MARK)
    w = tmp_path / "ws"
    w.mkdir()
    (w / "notes.md").write_text("ok\n")
    (w / "link_out").symlink_to(outside)  # a directory symlink out
    (w / "secret_link.txt").symlink_to(outside / "secret.txt")  # a file symlink out (planted)
    (w / "inside_link.md").symlink_to(w / "notes.md")  # a symlink that stays inside: allowed
    os.link(outside / "secret.txt", w / "hard.txt")  # a hard link to an outside file
    (w / "zero").symlink_to("/dev/zero")
    os.mkfifo(w / "fifo")
    with open(w / "huge.log", "wb") as f:  # text at the start, then a sparse hole (no disk)
        f.write(b"log line\n" * 8000)
        f.truncate(HUGE)
    (w / "blob.bin").write_bytes(bytes(range(256)) * 64)
    deep = w
    for i in range(40):
        deep = deep / f"d{i}"
    deep.mkdir(parents=True)
    (deep / "leaf.txt").write_text("deep\n")
    wide = w / "wide"
    wide.mkdir()
    for i in range(3000):
        (wide / f"f{i}.txt").write_text("x")
    (w / "regex_bait.txt").write_text("a" * 5000 + "!\n")
    return w


# (tool, arguments, "refused" | "bounded", what the result must say)
TABLE = [
    ("read_file", {"path": "../outside/secret.txt"}, "refused", ".."),
    ("read_file", {"path": "sub/../../outside/secret.txt"}, "refused", ".."),
    ("read_file", {"path": "/etc/passwd"}, "refused", "absolute"),
    ("read_file", {"path": "~/.bashrc"}, "refused", "~"),
    ("read_file", {"path": "link_out/secret.txt"}, "refused", "symlink"),
    ("read_file", {"path": "secret_link.txt"}, "refused", "symlink"),
    ("list_dir", {"path": "link_out"}, "refused", "symlink"),
    ("grep", {"pattern": "OUTSIDE", "path": "link_out"}, "refused", "symlink"),
    ("read_file", {"path": "hard.txt"}, "refused", "hard link"),
    ("read_file", {"path": "/proc/self/environ"}, "refused", "absolute"),
    ("read_file", {"path": "zero"}, "refused", "symlink"),
    ("read_file", {"path": "fifo"}, "refused", "FIFO"),
    ("read_file", {"path": "notes.md\x00../../etc/passwd"}, "refused", "NUL"),
    ("read_file", {"path": "huge.log"}, "bounded", "truncated"),
    ("read_file", {"path": "blob.bin"}, "refused", "binary"),
    ("glob", {"pattern": "**/*"}, "bounded", ""),
    ("glob", {"pattern": "../**/*"}, "refused", ".."),
    ("grep", {"pattern": "(a+)+$"}, "bounded", ""),
    ("grep", {"pattern": "(a|aa)*b", "path": "regex_bait.txt"}, "bounded", ""),
    ("calculate", {"expression": "9**9**9"}, "refused", ""),
    ("calculate", {"expression": "2**10000000"}, "refused", ""),
    ("calculate", {"expression": "__import__('os').system('touch /tmp/pwned')"}, "refused", ""),
    ("read_file", {"path": "inside_link.md"}, "ok", "ok"),
]


@pytest.mark.parametrize("tool,args,outcome,says", TABLE, ids=[f"{t}:{list(a.values())[0][:30]!r}" for t, a, *_ in TABLE])
def test_escape_is_refused_or_bounded(ws: Path, tool: str, args: dict, outcome: str, says: str) -> None:
    from hbench.plugin_manager import get_registries
    from hbench.sandbox import Sandbox
    from hbench.tools import ToolError

    box = Sandbox(ws)
    before = sorted(p.name for p in ws.parent.iterdir())
    tracemalloc.start()
    t0, c0 = time.monotonic(), time.process_time()
    try:
        out, err = get_registries().tools.get(tool).call(args, box), None
    except ToolError as exc:
        out, err = None, str(exc)
    wall, cpu = time.monotonic() - t0, time.process_time() - c0
    _cur, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    # Bounded in CPU time (a backtracking regex or an unbounded walk burns CPU: 3 s catches
    # it), and in wall time against a call that blocks without burning CPU (a FIFO, /dev/zero).
    # The wall bound is generous: the whole-workspace grep under tracemalloc took 3.6 s wall
    # on 2 cores at load 6-9 (CI), far less CPU.
    assert cpu < 3.0, f"took {cpu:.2f} s CPU"
    assert wall < 20.0, f"took {wall:.2f} s wall"
    assert peak < 32 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
    text = out if out is not None else err
    assert MARK not in text  # nothing from outside came back
    if outcome == "refused":
        assert err is not None, f"not refused: {out[:200]!r}"
        assert says.lower() in err.lower(), err
    elif outcome == "bounded":
        assert (out is not None and len(out) <= 64 * 1024) or err is not None
        if says:
            assert says in (out or err)
    else:
        assert out is not None and says in out
    assert sorted(p.name for p in ws.parent.iterdir()) == before  # nothing written next to the scratch folder
    assert not Path("/tmp/pwned").exists()


def test_symlink_in_a_suite_fixture_tree_is_refused_at_load(tmp_path: Path) -> None:
    from hbench.errors import SuiteError
    from hbench.suite import load_suite

    root = write_suite(tmp_path / "s", [{"id": "a", "prompt": "p"}])
    (root / "fixtures" / "evil").symlink_to("/etc/passwd")
    with pytest.raises(SuiteError, match="symlink"):
        load_suite(str(root))


def test_escapes_from_the_model_in_a_real_run_are_refused_and_the_attempt_goes_on(tmp_path: Path) -> None:
    (tmp_path / "outside.txt").write_text(MARK)
    suite = write_suite(tmp_path / "suite", [{"id": "escape", "prompt": "try to escape", "expect_tool_any": ["read"]}])
    escapes = [("read_file", {"path": "../../../../outside.txt"}), ("read_file", {"path": str(tmp_path / "outside.txt")}),
               ("read_file", {"path": "/proc/self/environ"}), ("list_dir", {"path": "~"}),
               ("glob", {"pattern": "**/*"}), ("grep", {"pattern": "(a+)+$"}),
               ("calculate", {"expression": "9**9**9"}), ("read_file", {"path": "notes.md"})]
    with ScriptedServer({"escape": [calls(*escapes), answer("ok")]}) as srv:
        result = run_inproc(tmp_path / "out", suite, srv.url, report="json")
        replies = [m for r in srv.chat_requests for m in r.messages if m.get("role") == "tool"]
    a = attempts_of(read_journal(result.journal))[("escape", 1)]
    assert a["passed"] and not a["error"]
    by = [(tc["name"], tc["ok"]) for tc in a["tool_calls"]]
    assert by[:3] == [("read_file", False)] * 3 and by[3] == ("list_dir", False) and by[-1] == ("read_file", True)
    assert all(MARK not in m["content"] and "HBENCH" not in m["content"] for m in replies)
    assert not (tmp_path / "out" / "scratch").exists()  # the scratch copy is gone afterwards
