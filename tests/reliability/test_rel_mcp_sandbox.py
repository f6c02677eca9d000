"""The sandbox escape table, through MCP: every escape the in-process tools are tested
against (``test_rel_sandbox.TABLE`` and ``test_sandbox``'s refused paths), sent as
``tools/call`` to a real ``hbench mcp-serve`` over stdio, in both of its modes (one
root; the warm pool's per-attempt roots), plus the two path-escape CVEs of the reference
filesystem MCP server: CVE-2025-53110 (a sibling folder whose name extends the root's:
``/root`` vs ``/root-evil``) and CVE-2025-53109 (a symlink inside the root pointing
out). Every one must be an ``isError`` result or a bounded answer, never data from
outside, and the server must keep serving: 0 escapes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

from hbench.plugins.mcp.launch import hbench_server_argv, server_env  # noqa: E402
from hbench.plugins.mcp.server import META_ATTEMPT, META_ROOT  # noqa: E402
from hbench.plugins.mcp.session import McpConnection  # noqa: E402
from test_rel_sandbox import MARK, TABLE, ws  # noqa: E402

#: test_sandbox.test_resolve_refuses, through MCP (path, what the refusal must say)
REFUSED_PATHS = [("../", "'..'"), ("../../etc/passwd", "'..'"), ("notes/../../x", "'..'"), ("/etc/passwd", "absolute"),
                 ("C:\\Windows\\win.ini", "absolute"), ("\\\\server\\share", "absolute"), ("~/.ssh/id_rsa", "'~'"),
                 ("~root", "'~'"), ("notes\x00.md", "NUL"), ("a" * 5000, "longer")]
CVE_53110 = "CVE-2025-53110"  # prefix collision
CVE_53109 = "CVE-2025-53109"  # symlink out


def _workspace(base: Path) -> Path:
    """test_rel_sandbox's hostile workspace, plus the CVE set-ups, under ``base/ws``."""
    w = ws.__wrapped__(base)  # the same fixture body: one table of hostile things
    evil = base / "ws-evil"  # CVE-2025-53110: shares the root's prefix
    evil.mkdir()
    (evil / "secret.txt").write_text(MARK)
    (w / "cve_link").symlink_to(evil / "secret.txt")  # CVE-2025-53109: a symlink inside pointing out
    (w / "cve_dir").symlink_to(evil)
    (w / "notes").mkdir()
    return w


CVE_CASES = [
    ("read_file", {"path": "../ws-evil/secret.txt"}, "'..'"),
    ("list_dir", {"path": "../ws-evil"}, "'..'"),
    ("read_file", {"path": "cve_link"}, "symlink"),
    ("read_file", {"path": "cve_dir/secret.txt"}, "symlink"),
    ("list_dir", {"path": "cve_dir"}, "symlink"),
    ("grep", {"pattern": "OUTSIDE", "path": "cve_dir"}, "symlink"),
    ("glob", {"pattern": "cve_dir/*"}, ""),
]


@pytest.fixture(scope="module", params=["root", "attempt-roots"])
def served(request: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    base = tmp_path_factory.mktemp("mcp-escapes")
    w = _workspace(base)
    if request.param == "root":
        conn = McpConnection("hbench", hbench_server_argv(w), env=server_env(hbench=True), start_timeout_s=120)
        meta = None
    else:  # the pool's mode: confined to base, each call names its attempt root
        conn = McpConnection("hbench", hbench_server_argv(base, attempt_roots=True), env=server_env(hbench=True),
                             start_timeout_s=120)
        meta = {META_ROOT: str(w), META_ATTEMPT: "escape-table"}
    conn.start()
    yield conn, w, meta
    assert conn.call_tool("read_file", {"path": "notes.md"}, meta=meta) == (True, "ok\n")  # still serving
    assert not conn.stats.exited_early  # it never crashed
    conn.close()


def _call(served: Any, tool: str, args: dict[str, Any]) -> tuple[bool, str]:
    conn, w, meta = served
    before = sorted(p.name for p in w.parent.iterdir())
    ok, text = conn.call_tool(tool, args, meta=meta, timeout_s=30)
    assert sorted(p.name for p in w.parent.iterdir()) == before  # nothing written next to the workspace
    assert MARK not in text, f"ESCAPE: {tool}({args!r}) returned outside data"
    return ok, text


@pytest.mark.parametrize("tool,args,outcome,says", TABLE, ids=[f"{t}:{list(a.values())[0][:30]!r}" for t, a, *_ in TABLE])
def test_escape_table_over_mcp(served: Any, tool: str, args: dict, outcome: str, says: str) -> None:
    ok, text = _call(served, tool, args)
    if outcome == "refused":
        assert not ok, f"not refused: {text[:200]!r}"
        assert says.lower() in text.lower(), text
    elif outcome == "bounded":
        assert len(text) <= 64 * 1024
        if says:
            assert says in text
    else:
        assert ok and says in text
    assert not Path("/tmp/pwned").exists()


@pytest.mark.parametrize("path,says", REFUSED_PATHS, ids=[repr(p[:20]) for p, _ in REFUSED_PATHS])
def test_refused_paths_over_mcp(served: Any, path: str, says: str) -> None:
    for tool in ("read_file", "list_dir"):
        ok, text = _call(served, tool, {"path": path})
        assert not ok and says in text, (tool, text)


@pytest.mark.parametrize("tool,args,says", CVE_CASES, ids=[f"{a.get('path') or a.get('pattern')}" for _, a, _ in CVE_CASES])
def test_reference_server_cves_over_mcp(served: Any, tool: str, args: dict, says: str) -> None:
    ok, text = _call(served, tool, args)
    if says:
        assert not ok and says in text, text
    else:  # glob never follows the link: it lists the link itself, not what is behind it
        assert "secret.txt" not in text


def test_the_pool_refuses_a_root_beside_its_base(served: Any) -> None:
    """CVE-2025-53110 at the pool's own boundary: an attempt root that only shares the
    base folder's prefix (``BASE-evil``) is not inside BASE."""
    conn, w, meta = served
    if meta is None:
        pytest.skip("one-root mode has no attempt roots")
    evil = w.parent.parent / (w.parent.name + "-evil")
    evil.mkdir(exist_ok=True)
    (evil / "s.txt").write_text(MARK)
    ok, text = conn.call_tool("read_file", {"path": "s.txt"}, meta={META_ROOT: str(evil), META_ATTEMPT: "x"})
    assert not ok and MARK not in text and "not a folder inside" in text
    os.remove(evil / "s.txt")
