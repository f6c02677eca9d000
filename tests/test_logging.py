"""structlog setup: JSON when not a TTY, and registered secrets never reach a log line."""

from __future__ import annotations

import io
import json

from hbench.logging import configure, get_logger, register_secret, scrub


def test_json_lines_and_secret_scrubbed():
    buf = io.StringIO()
    configure("auto", "info", stream=buf)  # StringIO is not a TTY -> JSON
    register_secret("sk-canary-123456")
    get_logger().warning("lane.ready", lane="q", url="http://x", header="Bearer sk-canary-123456",
                         nested={"k": ["sk-canary-123456"]}, error=RuntimeError("key sk-canary-123456 bad"))
    line = buf.getvalue().strip().splitlines()[-1]
    rec = json.loads(line)
    assert rec["event"] == "lane.ready" and rec["level"] == "warning"
    assert "sk-canary-123456" not in line
    assert rec["header"] == "Bearer ***" and rec["nested"] == {"k": ["***"]}
    assert scrub("a sk-canary-123456 b") == "a *** b"
    configure("json", "warning")


def test_level_filters():
    buf = io.StringIO()
    configure("console", "error", stream=buf)
    get_logger().warning("x.y")
    get_logger().error("x.z")
    out = buf.getvalue()
    assert "x.z" in out and "x.y" not in out
    configure("json", "warning")
