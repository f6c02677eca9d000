"""The ``review`` reporter: ``review.md``, the answers of ``vibe`` prompts for a person.

Checks are deterministic and cannot judge tone or usefulness; a prompt marked ``vibe``
is scored by its check as usual *and* queued here, each lane's answers side by side,
with a verdict line to fill in. Which prompts are vibe comes from the suite when the
run has it (``context["suite"]``), else from each scorecard's ``prompts[].vibe``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

from hbench.logging import get_logger
from hbench.models import Scorecard
from hbench.reporters import Reporter


def fenced(text: str) -> str:
    """A fenced block that the answer cannot close (the fence outgrows any backtick run)."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text.rstrip()}\n{fence}"


def review_markdown(scorecards: list[Scorecard], suite: Any = None) -> str:
    # imported when a review is written (listing plugins stays fast)
    from hbench.plugins.reporters.markdown import md_cell
    from hbench.plugins.reporters.tables import dedupe_lane_names
    from hbench.report import lane_name

    cards = dedupe_lane_names(list(scorecards))
    prompt_text: dict[str, str] = {}
    vibe_ids: list[str] = []
    if suite is not None:
        for p in suite.prompts:
            prompt_text[p.id] = p.prompt
            if p.vibe:
                vibe_ids.append(p.id)
    else:
        for sc in cards:
            for p in sc.prompts:
                if getattr(p, "vibe", False) and p.id not in vibe_ids:
                    vibe_ids.append(p.id)
    lines = ["# hermes-bench review: answers for a person to judge", ""]
    if not vibe_ids:
        lines.append("No prompt in this suite is marked `vibe`: nothing to review.")
        return "\n".join(lines) + "\n"
    lines += [
        "Each `vibe` prompt was scored by its check, and its answers are listed here because a check "
        "cannot judge everything. For each lane, tick one verdict and add a note; the automatic check "
        "result is shown for reference.",
        "",
    ]
    for pid in vibe_ids:
        lines += [f"## {md_cell(pid)}", ""]
        if pid in prompt_text:
            lines += ["Prompt:", "", fenced(prompt_text[pid]), ""]
        for sc in cards:
            ps = next((p for p in sc.prompts if p.id == pid), None)
            lines += [f"### {md_cell(lane_name(sc))} ({md_cell(sc.lane.get('model') or '?')})", ""]
            if ps is None or ps.skipped or not ps.attempts:
                why = ps.skipped if ps is not None and ps.skipped else "did not run on this lane"
                lines += [f"_Not run: {md_cell(why)}._", ""]
                continue
            lines += [f"Check: {ps.passes}/{ps.runs} attempts passed.", ""]
            for a in ps.attempts:
                status = "pass" if a.passed else "fail"
                extra = f", runaway: {a.runaway}" if a.runaway else (f", error: {a.error}" if a.error else "")
                why = f" ({md_cell(a.why)})" if a.why else ""
                lines += [f"Attempt {a.n}: {status}{md_cell(extra)}{why}", "", fenced(a.answer or "(empty answer)"), ""]
            lines += ["Verdict: [ ] good  [ ] acceptable  [ ] bad", "", "Notes: ", ""]
    return "\n".join(lines).rstrip() + "\n"


class ReviewReporter(Reporter):
    name: ClassVar[str] = "review"
    description: ClassVar[str] = "review.md: answers of vibe prompts, per lane, with a verdict to fill in"

    def write(self, scorecards: list[Scorecard], out_dir: Path, context: dict[str, Any]) -> list[Path]:
        from hbench.report import sanitise_text, write_text_atomic

        text = review_markdown(list(scorecards), context.get("suite"))
        path = write_text_atomic(Path(out_dir) / "review.md", sanitise_text(text))
        get_logger().info("report.written", reporter=self.name, path=str(path))
        return [path]


reporter = ReviewReporter()
