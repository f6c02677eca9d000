"""Trends for report.html: each lane's core_pass and pass_rate over its last runs of the
same suite, read from the run database. Nothing when the writer is off
(``HBENCH_HISTORY=0``), when there is no database yet, or when it cannot be read (the
report is written anyway)."""

from __future__ import annotations

from typing import Any

from hbench.logging import get_logger
from hbench.plugins.history.html import trends_section
from hbench.plugins.history.live import _enabled
from hbench.plugins.history.query import trend
from hbench.plugins.history.where import exists


def trends_html(scorecards: list[Any], last: int = 20) -> str:
    """The "Trend" section for these scorecards' lanes, or "" (no lane has two runs)."""
    if not scorecards or not _enabled():
        return ""
    try:
        if not exists():
            return ""
        from hbench.plugins.history import db  # SQLAlchemy: imported only when a database is there

        engine = db.engine_for()
        data = {}
        for sc in scorecards:
            name = str(sc.lane.get("name"))
            data[name] = trend(engine, name, (sc.suite or {}).get("sha256"), last=last)
        return trends_section(data)
    except Exception as exc:  # noqa: BLE001 - a report never fails for its trend
        get_logger().warning("report.trend_unavailable", error=f"{type(exc).__name__}: {exc}".splitlines()[0])
        return ""
