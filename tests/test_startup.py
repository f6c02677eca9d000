"""Start-up stays light (BENCHMARKS.md 5): structlog is imported on the first log call, and
logging configured before that still takes effect, whatever thread logs first.

The "no heavy module" checks of `hbench plugins` / `--help` are in tests/test_plugins.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60)


def test_configure_before_structlog_is_imported_applies_on_first_log_call() -> None:
    r = _run("""
        import io, sys
        from hbench.logging import configure, get_logger, register_secret
        buf = io.StringIO()
        configure("json", "info", stream=buf)
        print("imported_after_configure", "structlog" in sys.modules)
        register_secret("sk-startup-canary-1")
        get_logger().debug("x.hidden")
        get_logger().info("x.shown", key="sk-startup-canary-1")
        print(buf.getvalue(), end="")
    """)
    assert r.returncode == 0, r.stderr
    first, *lines = r.stdout.splitlines()
    assert first == "imported_after_configure False"
    assert len(lines) == 1, lines  # debug filtered at level info
    rec = json.loads(lines[0])
    assert rec["event"] == "x.shown" and rec["level"] == "info" and rec["key"] == "***"


def test_reconfigure_after_structlog_is_imported_applies_at_once() -> None:
    r = _run("""
        import io, json
        import structlog
        from hbench.logging import configure, get_logger
        a, b = io.StringIO(), io.StringIO()
        configure("json", "warning", stream=a)
        get_logger().warning("x.first")
        configure("console", "warning", stream=b)
        structlog.get_logger().warning("x.second")  # structlog's own logger: already reconfigured
        print(json.dumps([a.getvalue(), b.getvalue()]))
    """)
    assert r.returncode == 0, r.stderr
    a, b = json.loads(r.stdout)
    assert "x.first" in a and "x.second" not in a
    assert "x.second" in b and not b.lstrip().startswith("{")  # console renderer, not JSON


def test_first_log_calls_from_many_threads_all_configured() -> None:
    """configure() pending, then 8 threads log at once: every line is rendered by the
    configured JSON renderer into the configured stream (none by structlog's default)."""
    r = _run("""
        import io, json, threading
        from hbench.logging import configure, get_logger
        buf = io.StringIO()
        configure("json", "info", stream=buf)
        start = threading.Barrier(8)
        def work(i):
            start.wait()
            get_logger().info("x.thread", i=i)
        ts = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        [t.start() for t in ts]; [t.join() for t in ts]
        print(sorted(json.loads(l)["i"] for l in buf.getvalue().splitlines()))
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(list(range(8)))
