"""Markdown for the reports: cells that render as the text they were given (a model's
answer, a check's reason, a server's error: :func:`md_cell`), tables of them, and
summary.md laid out from :func:`~hbench.plugins.reporters.tables.build_tables`' rows
(:func:`summary_markdown`). Used by the ``md`` and ``review`` reporters.
"""

from __future__ import annotations

import re
from typing import Any

from hbench.plugins.reporters.tables import (
    CONCURRENCY_HEADER,
    COST_HEADER,
    DASH,
    DEPTH_HEADER,
    RANK_HEADER,
    Tables,
    category_cell,
    concurrency_rows,
    cost_rows,
    decided_lines,
    depth_rows,
    headline,
    lane_cell,
    sweep_notes,
    tie_lines,
)


#: what a Markdown renderer may turn into a link by itself: URLs, www. hosts, e-mail addresses
#: (bounded repeats: linear on a long hostile line)
_MD_LINKY = re.compile(r"(?i)(?:[a-z][a-z0-9+.\-]{0,30}:/{1,3}|www\.)[^\s<>|`\\]*"
                       r"|[\w.+\-]{1,64}@[\w\-]{1,63}(?:\.[\w\-]{1,63}){1,8}")


#: a ``]`` that would close a link or image text (``](url)``, ``][ref]``, ``]: url``)
_MD_LINK_CLOSE = re.compile(r"\](?=[(\[:])")


def _md_text(s: str) -> str:
    s = (s.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
         .replace("`", "\\`"))  # a backtick of the text cannot pair with a code span of ours
    return _MD_LINK_CLOSE.sub(r"\\]", s)


def md_cell(text: Any) -> str:
    """Untrusted text (a model's answer, a check's reason, a server's error) as Markdown
    that renders as that text: one line; pipes escaped (a table cell); ``<``/``>`` as
    entities (no raw HTML); a ``]`` that would close link text escaped (no image or link:
    ``![x](http://h/p.png)``);
    URLs and e-mail addresses in code spans (no autolink)."""
    s = " ".join(str(text).split())
    out: list[str] = []
    pos = 0
    for m in _MD_LINKY.finditer(s):
        out.append(_md_text(s[pos:m.start()]))
        out.append(f"`{m.group(0)}`")
        pos = m.end()
    out.append(_md_text(s[pos:]))
    return "".join(out)


def md_table(header: list[str], rows: list[list[str]], align: str | None = None) -> list[str]:
    align = align or ("l" + "r" * (len(header) - 1))
    seps = {"l": "---", "r": "--:", "c": ":-:"}
    out = ["| " + " | ".join(md_cell(h) for h in header) + " |",
           "|" + "|".join(seps[a] for a in align) + "|"]
    out += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
    return out


def rank_table_md(t: Tables) -> list[str]:
    """The rank table (one per comparable set when they are mixed) and the unrankable
    list under it, as markdown lines."""
    header = list(RANK_HEADER) + (["suite"] if t.mixed else [])
    out: list[str] = []
    groups = t.groups if len(t.groups) > 1 else [""]
    for g in groups:
        rows = []
        for r in t.ranked:
            if g and r.group != g:
                continue
            row = [r.rank_cell, lane_cell(t, r.lane), r.agent, r.core_pass, r.pass_rate, r.consistency, r.runaway,
                   r.tok_s, r.peak_unified]
            rows.append(row + ([r.suite] if t.mixed else []))
        if g:
            out += ([""] if out else []) + [f"**Ranked within {md_cell(g)}**", ""]
        if rows:
            out += md_table(header, rows, "rllrrrrrr" + ("l" if t.mixed else ""))
        else:
            out.append("No lane is rankable.")
    ties = tie_lines(t)
    if ties:
        out.append("")
        out.append("≈ statistically tied: the 95% intervals of their pass rates overlap, so the order "
                   "between these lanes is not significant (more runs narrow the intervals).")
        out += [f"- {md_cell(lane)} ≈ {md_cell(', '.join(others))}" for lane, others in ties]
    decided = decided_lines(t)
    if decided:  # which --prefer ordered lanes tied on quality, and by how much
        out += [""] + [md_cell(d[0].upper() + d[1:]) for d in decided]
    if t.unrankable:
        out += ["", "**Not ranked** (a gate failed or was not evaluated, the run is incomplete, or the lane "
                "did not run):", ""]
        urows = [[lane_cell(t, r.lane), r.agent, r.reason or "unrankable", r.core_pass, r.pass_rate, r.tok_s]
                 + ([r.suite] if t.mixed else []) for r in t.unrankable]
        out += md_table(["Lane", "Agent", "why not ranked", "core_pass", "pass_rate (95% CI)", "tok/s"]
                        + (["suite"] if t.mixed else []), urows, "lllrrr" + ("l" if t.mixed else ""))
    return out


def category_md(t: Tables) -> list[str]:
    """The per-category table: a row per category, a column per lane."""
    header = ["Category", "prompts"] + t.lanes
    rows = []
    for c in t.categories:
        n = max((t.category_figures[lane].get(c, {}).get("n", 0) for lane in t.lanes), default=0)
        rows.append([c, str(n)] + [category_cell(t.category_figures[lane].get(c)) for lane in t.lanes])
    return md_table(header, rows, "lr" + "r" * len(t.lanes))


def matrix_md(t: Tables) -> list[str]:
    tiers = any(p.difficulty or p.tags for p in t.prompts)
    header = ["Prompt", "category"] + (["difficulty · tags"] if tiers else []) + t.lanes
    rows = []
    for p in t.prompts:
        label = p.id + (" (gate: " + p.gate + ")" if p.gate else "") + ("" if p.core else " *")
        tier = " · ".join([str(p.difficulty or DASH)] + list(p.tags))
        rows.append([label, p.category] + ([tier] if tiers else [])
                    + [t.matrix[lane].get(p.id).text if p.id in t.matrix[lane] else DASH for lane in t.lanes])
    out = md_table(header, rows, "ll" + ("r" if tiers else "") + "r" * len(t.lanes))
    if any(not p.core for p in t.prompts):
        out += ["", "\\* not a core prompt: shown, but not counted in core_pass or pass_rate."]
    return out


def cost_md(t: Tables) -> list[str]:
    """What a brain swap and a solve cost (ready_s, resting memory, efficiency); nothing when
    no scorecard carries these figures (older scorecards)."""
    rows = cost_rows(t)
    if not rows:
        return []
    return ["", "## Cost (ready = start to a 1-token answer; per solved attempt, failures included)", "",
            *md_table(COST_HEADER, rows)]


def sweeps_md(t: Tables) -> list[str]:
    """The throughput sweeps (``hbench throughput --depth``/``--concurrency-sweep``, or the
    end-of-lane probe): a table per sweep; nothing when no lane swept."""
    depth, conc, notes = depth_rows(t), concurrency_rows(t), sweep_notes(t)
    if not (depth or conc or notes):
        return []
    out = ["", "## Throughput sweeps (cache-busted: every request has its own prefix)"]
    if depth:
        out += ["", "At growing context (decode tok/s at each depth):", "", *md_table(DEPTH_HEADER, depth)]
    if conc:
        out += ["", "Under concurrency (aggregate = all streams together):", "",
                *md_table(CONCURRENCY_HEADER, conc)]
    if notes:
        out += [""] + [f"- {md_cell(n)}" for n in notes]
    return out


def summary_markdown(t: Tables, fail_under: list[str] | None = None) -> str:
    """summary.md: rank table, unrankable lanes, ties, prompt matrix, telemetry, latency;
    ``fail_under``: the lanes that missed ``--fail-under``, one line each."""
    runs = ", ".join(str(r) for r in t.runs)
    lines = ["# hermes-bench results", ""]
    lines.append(f"Suite: {md_cell(' | '.join(t.suites))}. Attempts per prompt: {runs}. "
                 f"Lanes: {len(t.lanes)}.")
    if t.mixed and len(t.suites) > 1:
        lines += ["", "**Mixed suites** (--allow-mixed): these lanes ran different suites, so their scores "
                  "are not directly comparable; the suite column says which, and each is ranked apart."]
    elif t.mixed:
        lines += ["", "**Mixed prompt sets** (--allow-mixed): these lanes ran different prompts of the suite, "
                  "so each prompt set is ranked in a table of its own."]
    lines += ["", md_cell(headline(t))]
    if fail_under:
        lines += ["", "## --fail-under: missed", ""] + [f"- {md_cell(line)}" for line in fail_under]
    lines += ["", "## Ranking", "",
              "core_pass = core prompts passed in a majority of attempts; pass_rate = mean over core "
              "prompts; consistency = share of attempts giving the most common answer (– with one attempt "
              "per prompt); errored attempts (the stack failed, not the model) count in none; runaway = attempts "
              "stopped by timeout, max_turns or a loop; peak unified = the most memory in use while the "
              "lane ran.", ""]
    lines += rank_table_md(t)
    if t.categories:
        lines += ["", "## Per category (core prompts passed by majority · mean pass rate)", ""]
        lines += category_md(t)
    lines += ["", "## Per-prompt passes (passes/scored attempts; +N errored)", ""]
    lines += matrix_md(t)
    lines += ["", "## Telemetry", ""]
    lines += md_table(t.telemetry_header, t.telemetry)
    turn = "; turn p95 = one model request and its answer" if "turn p95" in t.latency_header else ""
    lines += ["", f"## Latency (attempt wall time; TTFT from the throughput probe{turn})", ""]
    lines += md_table(t.latency_header, t.latency)
    lines += cost_md(t)
    lines += sweeps_md(t)
    failed = [(lane, t.scorecards[lane].failed) for lane in t.lanes if t.scorecards[lane].failed]
    warns = [(lane, w) for lane in t.lanes for w in t.scorecards[lane].warnings]
    if failed or warns:
        lines += ["", "## Notes", ""]
        lines += [f"- {md_cell(lane)}: failed to run: {md_cell(why)}" for lane, why in failed]
        lines += [f"- {md_cell(lane)}: {md_cell(w)}" for lane, w in warns]
    return "\n".join(lines) + "\n"
