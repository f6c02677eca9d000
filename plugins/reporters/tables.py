"""The tables every report is built from: scorecards in, rows of display strings out.

The rank table, the per-prompt matrix, telemetry, latency and cost rows are built here
once (:func:`build_tables`) so summary.md, report.html and ``hbench report`` always agree
with each other. Pure: no I/O. The scorecard file format lives in :mod:`hbench.report`.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

from hbench.models import Scorecard
from hbench.plugin_manager import get_registries
from hbench.report import ScorecardError, check_suites, group_label, lane_name, suite_label
from hbench.scoring import category_figures, rank

DASH = "–"  # shown where a figure is unknown (never 0)


def lane_cell(t: Any, lane: str) -> str:
    """A lane's name in a table row, with the node it ran on (``node``, --ray / --parallel-lanes)
    when it names one: ``qwen (on spark2)``. Telemetry in that row is that node's."""
    sc = t.scorecards.get(lane) if isinstance(getattr(t, "scorecards", None), dict) else None
    node = sc.provenance.get("node") if sc is not None and isinstance(sc.provenance, dict) else None
    return f"{lane} (on {node})" if node else lane


def host_name(sc: Scorecard) -> str | None:
    """The machine a scorecard came from: ``provenance.host.hostname``, the one name the
    runner writes (a 1.0 scorecard's ``host.name`` is renamed when it is read; a bare
    string is accepted too, as early runners wrote it)."""
    host = sc.provenance.get("host")
    if isinstance(host, dict):
        host = host.get("hostname")
    return str(host) if host else None


def dedupe_lane_names(scorecards: list[Scorecard]) -> list[Scorecard]:
    """Scorecards from several machines may share a lane name (two `embedded` lanes):
    suffix the host (or a counter) so every row, chart and tie is unambiguous."""
    counts: dict[str, int] = {}
    for sc in scorecards:
        counts[lane_name(sc)] = counts.get(lane_name(sc), 0) + 1
    out: list[Scorecard] = []
    used: set[str] = set()
    for sc in scorecards:
        name = lane_name(sc)
        if counts[name] > 1:
            host = host_name(sc)
            cand = f"{name}@{host}" if host else name
            i = 2
            while cand in used:
                cand = f"{name}#{i}"
                i += 1
            sc = attrs.evolve(sc, lane={**sc.lane, "name": cand})
            name = cand
        used.add(name)
        out.append(sc)
    return out


def pct(x: float | None, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return DASH
    return f"{x * 100:.{digits}f}%"


def num(x: float | None, fmt: str = ".1f", unit: str = "") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return DASH
    return f"{x:{fmt}}{unit}"


def seconds(x: float | None) -> str:
    """Wall time: one decimal, two below a second (a 0.02 s attempt is not "0.0 s")."""
    return num(x, ".2f" if x is not None and x < 1 else ".1f", " s")


def peak_memory_gb(sc: Scorecard) -> tuple[float | None, str]:
    """Peak memory for the table and the bubble size: unified memory where known, else
    dedicated GPU memory. Returns (GB, which)."""
    t = sc.telemetry
    if t.unified_used_gb_max is not None:
        return t.unified_used_gb_max, "unified"
    gpu = getattr(t, "gpu_mem_used_gb_max", None)
    if gpu is not None:
        return gpu, "gpu"
    return None, ""


@attrs.frozen
class RankRow:
    rank: int | None
    lane: str
    agent: str
    core_pass: str
    pass_rate: str
    consistency: str
    runaway: str
    tok_s: str
    peak_unified: str
    tied_with: tuple[str, ...] = ()
    reason: str = ""  # unrankable: the gate that failed, why the lane is incomplete or failed to run
    suite: str = ""  # set when suites are mixed
    group: str = ""  # the comparable set (suite + prompt set) this lane is ranked within
    decided_by: str = ""  # first of a group tied on quality: which --prefer ordered it, by how much

    @property
    def rank_cell(self) -> str:
        if self.rank is None:
            return DASH
        return f"{self.rank} ≈" if self.tied_with else str(self.rank)


@attrs.frozen
class MatrixCell:
    passes: int
    runs: int  # scored attempts
    skipped: str | None = None
    errored: int = 0  # errored attempts: shown, never scored

    @property
    def text(self) -> str:
        if self.skipped:
            return "skipped"
        if not self.runs:
            return f"{self.errored} errored" if self.errored else "not run"
        return f"{self.passes}/{self.runs}" + (f" +{self.errored} errored" if self.errored else "")

    @property
    def rate(self) -> float | None:
        return None if self.skipped or not self.runs else self.passes / self.runs


@attrs.frozen
class PromptCol:
    id: str
    category: str
    core: bool
    gate: str | None
    vibe: bool
    difficulty: int | None = None  # 1-3 (suite format 2)
    tags: tuple[str, ...] = ()


@attrs.define
class Tables:
    ranked: list[RankRow]
    unrankable: list[RankRow]
    lanes: list[str]  # every lane in display order (ranked, then unrankable)
    scorecards: dict[str, Scorecard]  # by (deduplicated) lane name
    prompts: list[PromptCol]
    matrix: dict[str, dict[str, MatrixCell]]  # lane -> prompt id -> cell
    telemetry: list[list[str]]  # rows: lane, samples, util mean, util max, peak unified, temp max
    latency: list[list[str]]  # rows: lane, p50, p95, max, ttft
    mixed: bool
    suites: list[str]  # distinct suite labels, in lane order
    runs: list[int]
    #: comparable sets (suite + prompt set), each ranked apart; one entry unless mixed
    groups: list[str] = attrs.field(factory=list)
    #: every category that ran on some lane (sorted), and lane -> category -> figures
    #: ({pass_rate, core_pass, core_n, n}, the scorecard's ``categories``)
    categories: list[str] = attrs.field(factory=list)
    category_figures: dict[str, dict[str, dict[str, Any]]] = attrs.field(factory=dict)
    prefer: str = "memory"  # what ordered lanes tied on quality (--prefer)
    #: the telemetry table's header: TELEMETRY_HEADER, plus "throttled" when a lane measured it
    telemetry_header: list[str] = attrs.field(factory=lambda: list(TELEMETRY_HEADER))
    #: the latency table's header: LATENCY_HEADER, plus "turn p95" (per model turn) when a lane has it
    latency_header: list[str] = attrs.field(factory=lambda: list(LATENCY_HEADER))


TELEMETRY_HEADER = ["Lane", "samples", "GPU util mean", "GPU util max", "peak unified", "GPU temp max"]
LATENCY_HEADER = ["Lane", "p50", "p95", "max", "TTFT"]
RANK_HEADER = ["Rank", "Lane", "Agent", "core_pass", "pass_rate (95% CI)", "consistency", "runaway",
               "tok/s", "peak unified"]


def _agent(sc: Scorecard) -> str:
    """The agent the scorecard names; a scorecard that names none (written before agents
    were recorded) ran the default agent."""
    name = sc.agent.get("name") if isinstance(sc.agent, dict) else None
    return str(name) if name else str(get_registries().agents.default() or DASH)


def _rank_row(r: Any, mixed: bool, group: str = "") -> RankRow:
    sc: Scorecard = r.scorecard
    lo, hi = (list(sc.pass_rate_ci95) + [None, None])[:2]
    ci = f" [{pct(lo)}–{pct(hi)}]" if lo is not None and hi is not None else ""
    mem, which = peak_memory_gb(sc)
    mem_txt = num(mem, ".1f", " GB") + (" (GPU)" if which == "gpu" else "")
    return RankRow(
        rank=r.rank, lane=lane_name(sc), agent=_agent(sc),
        core_pass=f"{sc.core_pass}/{sc.core_n}",
        pass_rate=pct(sc.pass_rate) + ci if not sc.failed else DASH,
        consistency=pct(sc.consistency) if not sc.failed else DASH,
        runaway=pct(sc.runaway_rate) if not sc.failed else DASH,
        tok_s=num(sc.throughput.tok_s),
        peak_unified=mem_txt,
        tied_with=tuple(r.tied_with), reason=r.reason or "", decided_by=getattr(r, "decided_by", "") or "",
        suite=suite_label(sc) if mixed else "", group=group,
    )


def build_tables(scorecards: list[Scorecard], allow_mixed: bool = False, prefer: str = "memory") -> Tables:
    """Rank the lanes (``hbench.scoring.rank``, lanes tied on quality ordered by
    ``prefer``) and lay out every table a report shows."""
    if not scorecards:
        raise ScorecardError("no scorecards to report on")
    mixed = check_suites(scorecards, allow_mixed)
    cards = dedupe_lane_names(scorecards)
    # lanes are ranked together only within one comparable set (suite + prompt set)
    groups: dict[str, list[Scorecard]] = {}
    for sc in cards:
        groups.setdefault(group_label(sc, cards), []).append(sc)
    ranked = []
    rows = []
    for label in sorted(groups):
        for r in rank(groups[label], prefer=prefer):
            ranked.append(r)
            rows.append(_rank_row(r, mixed, label))
    rows = [r for r in rows if r.rank is not None] + [r for r in rows if r.rank is None]
    lanes = [row.lane for row in rows]
    by_lane = {lane_name(r.scorecard): r.scorecard for r in ranked}

    prompts: dict[str, PromptCol] = {}
    matrix: dict[str, dict[str, MatrixCell]] = {}
    for lane in lanes:
        sc = by_lane[lane]
        matrix[lane] = {}
        for p in sc.prompts:
            if p.id not in prompts:
                prompts[p.id] = PromptCol(p.id, p.category, p.core, p.gate, bool(getattr(p, "vibe", False)),
                                          getattr(p, "difficulty", None), tuple(getattr(p, "tags", None) or ()))
            matrix[lane][p.id] = MatrixCell(p.passes, p.runs, p.skipped, p.errors)

    telemetry, latency = [], []
    throttled = any(throttle(by_lane[lane]) for lane in lanes)  # the column only where some lane measured it
    turns = any((by_lane[lane].efficiency or {}).get("turn_p95_s") is not None for lane in lanes)
    for lane in lanes:
        sc = by_lane[lane]
        t, lat = sc.telemetry, sc.latency
        mem, which = peak_memory_gb(sc)
        telemetry.append([lane, str(t.n_samples), num(t.gpu_util_mean, ".0f", "%"), num(t.gpu_util_max, ".0f", "%"),
                          num(t.unified_used_gb_max, ".1f", " GB"), num(t.gpu_temp_c_max, ".0f", " °C")]
                         + ([throttle_cell(throttle(sc))] if throttled else []))
        latency.append([lane, seconds(lat.p50_s), seconds(lat.p95_s), seconds(lat.max_s),
                        num(sc.throughput.ttft_ms, ".0f", " ms")]
                       + ([seconds((sc.efficiency or {}).get("turn_p95_s"))] if turns else []))
    # per category (an older scorecard without ``categories``: worked out from its prompts)
    cat_figures = {lane: (by_lane[lane].categories or category_figures(by_lane[lane].prompts)) for lane in lanes}
    categories = sorted({c for figs in cat_figures.values() for c in figs})
    suites: list[str] = []
    for lane in lanes:
        label = suite_label(by_lane[lane])
        if label not in suites:
            suites.append(label)
    return Tables(
        ranked=[r for r in rows if r.rank is not None],
        unrankable=[r for r in rows if r.rank is None],
        lanes=lanes, scorecards=by_lane, prompts=list(prompts.values()), matrix=matrix,
        telemetry=telemetry, latency=latency, mixed=mixed, suites=suites,
        runs=sorted({by_lane[lane].runs for lane in lanes}),
        groups=sorted(groups),
        categories=categories, category_figures=cat_figures, prefer=prefer,
        telemetry_header=TELEMETRY_HEADER + (["throttled"] if throttled else []),
        latency_header=LATENCY_HEADER + (["turn p95"] if turns else []),
    )


def tie_lines(t: Tables) -> list[tuple[str, list[str]]]:
    """Each tie once: a lane and the lanes ranked below it that it is tied with."""
    order = {r.lane: i for i, r in enumerate(t.ranked)}
    out = []
    for r in t.ranked:
        below = [o for o in r.tied_with if order.get(o, -1) > order[r.lane]]
        if below:
            out.append((r.lane, sorted(below, key=order.__getitem__)))
    return out


def why_short(sc: Scorecard) -> str:
    """A few words for an unranked lane in the headline (the table says the rest)."""
    if sc.failed:
        return "failed to run"
    if not sc.complete:
        return "incomplete"
    status = sc.gate.get("status") if isinstance(sc.gate, dict) else None
    if status == "not evaluated":
        return "gate not evaluated"
    if status == "failed" or (isinstance(sc.gate, dict) and sc.gate.get("passed") is False):
        return "gate failed"
    return "not rankable"


def headline(t: Tables) -> str:
    """One sentence a person reads first: the top lane (of each comparable set), what it
    is tied with, what is out and why. Only a ranked lane, never an incomplete one, is
    ever called the top lane."""
    out = ""
    if not t.ranked:
        out = f"No lane is rankable ({len(t.unrankable)} not ranked: see below)."
    groups = t.groups if len(t.groups) > 1 else [""]
    for g in groups:
        rows = [r for r in t.ranked if not g or r.group == g]
        if not rows:
            continue
        top = rows[0]
        where = f" ({g})" if g else ""
        out += (" " if out else "") + (
            f"Top lane{where}: {top.lane} ({top.core_pass} core prompts, pass rate {top.pass_rate}, "
            f"{top.tok_s} tok/s, peak {top.peak_unified}).")
        if top.tied_with and top.decided_by:
            by = top.decided_by.removeprefix("tied on quality; ")
            out += f" Tied on quality with {', '.join(top.tied_with)}; {by}."
        elif top.tied_with:
            out += f" Statistically tied with {', '.join(top.tied_with)}: weigh speed and memory, or run more attempts."
    if t.unrankable and t.ranked:
        out += f" Not ranked: {', '.join(f'{r.lane} ({why_short(t.scorecards[r.lane])})' for r in t.unrankable)}."
    return out


def category_cell(fig: dict[str, Any] | None) -> str:
    """One lane's figures for one category: ``core 3/4 · 72%`` (``72%`` without core prompts)."""
    if not fig:
        return DASH
    rate = pct(fig.get("pass_rate"))
    return f"core {fig.get('core_pass', 0)}/{fig['core_n']} · {rate}" if fig.get("core_n") else rate


def decided_lines(t: Tables) -> list[str]:
    """One line per group of lanes tied on quality: which preference ordered it, by how much."""
    return [r.decided_by for r in t.ranked if r.decided_by]


# --------------------------------------------------------------------------- what a lane costs


COST_HEADER = ["Lane", "ready (s)", "resting memory", "s / solved", "tokens / solved", "goodput (SLO)"]


def cost_rows(t: Tables) -> list[list[str]]:
    """What a brain swap and a solve cost, a row per lane that has these figures (ready_s
    and resting memory from the lane, efficiency from the suite); none for older scorecards."""
    rows = []
    for lane in t.lanes:
        sc = t.scorecards[lane]
        eff, info = sc.efficiency or {}, sc.lane or {}
        if not eff and info.get("ready_s") is None:
            continue
        good = eff.get("goodput")
        slo = eff.get("slo_s")
        rows.append([lane, num(info.get("ready_s"), ".1f"), num(info.get("resting_memory_gb"), ".2f", " GB"),
                     num(eff.get("s_per_solved"), ".1f"), num(eff.get("completion_tokens_per_solved"), ".0f"),
                     DASH if good is None else f"{pct(good)}" + (f" (≤{slo:g} s)" if slo else "")])
    return rows


def throttle(sc: Scorecard) -> dict[str, Any]:
    """``telemetry.throttle``: {"share": 0..1 of samples throttled, "reasons": {reason: share},
    "source"}, or {} when not measured (no NVML, an older scorecard)."""
    th = sc.telemetry.throttle
    return th if isinstance(th.get("share"), (int, float)) else {}


def throttle_cell(th: dict[str, Any]) -> str:
    """``none``, ``12% (thermal 10%, power 2%)``, or ``not measured``."""
    if not th:
        return "not measured"
    if not th["share"]:
        return "none"
    reasons = sorted(((str(k), v) for k, v in (th.get("reasons") or {}).items()
                      if isinstance(v, (int, float)) and v > 0), key=lambda kv: -kv[1])
    why = ", ".join(f"{k} {pct(v)}" for k, v in reasons[:3])
    return pct(th["share"]) + (f" ({why})" if why else "")


# --------------------------------------------------------------------------- throughput sweeps


DEPTH_HEADER = ["Lane", "depth", "prompt tokens", "TTFT", "prefill tok/s", "decode tok/s", "ITL p95"]
CONCURRENCY_HEADER = ["Lane", "streams", "ok", "per-stream tok/s", "aggregate tok/s", "TTFT p50"]


def sweep_points(sc: Scorecard, which: str) -> list[dict[str, Any]]:
    """The points of a lane's ``depth`` or ``concurrency`` sweep (``throughput.sweeps``), or []."""
    sweep = (sc.throughput.sweeps or {}).get(which)
    pts = sweep.get("points") if isinstance(sweep, dict) else None
    return [p for p in pts if isinstance(p, dict)] if isinstance(pts, list) else []


def depth_rows(t: Tables) -> list[list[str]]:
    return [[lane, str(p.get("depth", DASH)), num(p.get("prompt_tokens"), ".0f"), num(p.get("ttft_ms"), ".0f", " ms"),
             num(p.get("prefill_tok_s"), ".0f"), num(p.get("decode_tok_s")), num(p.get("itl_p95_ms"), ".0f", " ms")]
            for lane in t.lanes for p in sweep_points(t.scorecards[lane], "depth")]


def concurrency_rows(t: Tables) -> list[list[str]]:
    return [[lane, str(p.get("concurrency", DASH)), f"{p.get('streams_ok', DASH)}/{p.get('concurrency', DASH)}",
             num(p.get("per_stream_tok_s")), num(p.get("aggregate_tok_s")), num(p.get("ttft_ms_p50"), ".0f", " ms")]
            for lane in t.lanes for p in sweep_points(t.scorecards[lane], "concurrency")]


def sweep_notes(t: Tables) -> list[str]:
    """One line per lane that swept: the prefill rate fitted across depths, cache hits (a
    cache-busted sweep has none), the server's prefix-cache hit rate, a sweep's error."""
    out = []
    for lane in t.lanes:
        sw = t.scorecards[lane].throughput.sweeps or {}
        if not sw:
            continue
        depth = sw.get("depth") if isinstance(sw.get("depth"), dict) else {}
        bits = []
        if depth.get("prefill_tok_s_fit") is not None:
            bits.append(f"prefill {num(depth['prefill_tok_s_fit'], '.0f')} tok/s fitted across depths")
        if depth.get("cache_hits") is not None:
            bits.append(f"{depth['cache_hits']} cached-prompt hits in the sweep")
        if sw.get("prefix_cache_hit_rate") is not None:
            bits.append(f"server prefix-cache hit rate {pct(sw['prefix_cache_hit_rate'])}")
        errors = sum(len(p.get("errors") or []) for p in sweep_points(t.scorecards[lane], "concurrency"))
        if errors:
            bits.append(f"{errors} concurrent stream{'s' if errors != 1 else ''} failed")
        if sw.get("error"):
            bits.append(f"sweep stopped: {sw['error']}")
        if bits:
            out.append(f"{lane}: " + "; ".join(bits))
    return out
