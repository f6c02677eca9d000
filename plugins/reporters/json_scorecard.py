"""The ``json`` reporter: one ``<lane>.json`` scorecard per lane (``hbench.scorecard/1``).

The file is what another machine's ``hbench report`` reads back, so it carries
everything: scores, per-prompt attempts, throughput, telemetry, provenance. Strings are
scrubbed of registered secrets and the user's home directory (see ``hbench.report``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from hbench.logging import get_logger
from hbench.models import Scorecard
from hbench.reporters import Reporter

#: set to 1 (the test suite does) to validate every written scorecard against the schema
VALIDATE_ENV = "HBENCH_VALIDATE_SCORECARDS"


class JsonReporter(Reporter):
    name: ClassVar[str] = "json"
    description: ClassVar[str] = "<lane>.json: the scorecard (schema hbench.scorecard/1)"
    per_lane: ClassVar[bool] = True

    def write(self, scorecards: list[Scorecard], out_dir: Path, context: dict[str, Any]) -> list[Path]:
        from hbench.report import scorecard_filename, scorecard_to_dict, validate_scorecard, write_json_atomic

        out_dir = Path(out_dir)
        written: list[Path] = []
        used: dict[str, str] = {}
        for sc in scorecards:
            lane = str(sc.lane.get("name") or "lane")
            fname = scorecard_filename(lane)
            if fname in used and used[fname] != lane:
                raise ValueError(f"lanes {used[fname]!r} and {lane!r} would both be written to {fname}; rename one")
            used[fname] = lane
            data = scorecard_to_dict(sc)
            if os.environ.get(VALIDATE_ENV, "") not in ("", "0"):
                validate_scorecard(data)
            path = write_json_atomic(out_dir / fname, data)
            get_logger().info("report.written", reporter=self.name, lane=lane, path=str(path))
            written.append(path)
        return written


reporter = JsonReporter()
