"""The reporter interface. Built-ins live in plugins/reporters/ (json, md, html, review)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # pragma: no cover
    from hbench.models import Scorecard


class Reporter:
    """Writes files from finished scorecards.

    ``context`` keys: ``journal`` (Path or None; transcripts live there), ``suite`` (the
    Suite or None when rebuilding from scorecards), ``series`` (telemetry by lane),
    ``allow_mixed`` (bool). Return the paths written.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: write each lane's file as that lane finishes (``write([scorecard], ...)``, so a
    #: stopped run keeps every finished lane), not again over all lanes at the end
    per_lane: ClassVar[bool] = False
    #: ``hbench report`` writes it when no ``--report`` is given (the summary and the page)
    default_for_report: ClassVar[bool] = False

    def write(self, scorecards: list[Scorecard], out_dir: Path, context: dict[str, Any]) -> list[Path]:  # pragma: no cover
        raise NotImplementedError
