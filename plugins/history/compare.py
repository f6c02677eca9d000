"""``hbench compare A B``: what changed for each lane between two runs. Pure functions on
scorecard dicts (``hbench.scorecard/1``); no database here.

Per lane present on both sides: the change in core_pass and in pass_rate with both 95%
intervals, the prompts whose majority verdict flipped (passed -> failed and back), and a
paired exact test on the prompts both sides ran.

**The test: McNemar's exact test** on the per-prompt majority verdicts. The same prompts
ran on both sides, so the verdicts are paired; only discordant prompts (flips) carry
information about a change, and under "no change" a flip is equally likely either way,
so the number of passed->failed flips among all flips is Binomial(flips, 1/2). The
two-sided p-value is ``min(1, 2 * P(X <= min(b, c)))``. It is exact (suites have 8-50
prompts: the chi-square approximation would be wrong at these counts), needs no
assumption about the size of the change, and is the same computation as an exact sign
test on the discordant pairs. Per-prompt majority verdicts, not attempts, are the unit:
attempts of one prompt are not independent (same prompt, same files), prompts are.

A lane **regressed** when it is significantly worse (p < alpha and more passed->failed
than failed->passed flips) or when it lost a core prompt (a core prompt passed by
majority in A and failed by majority in B). ``--fail-on-regression`` exits 4 then.
"""

from __future__ import annotations

import math
from typing import Any

import attrs

EXIT_REGRESSION = 4


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` and ``c`` discordant pairs."""
    if b < 0 or c < 0:
        raise ValueError("counts must be non-negative")
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2.0 * tail)


@attrs.define
class LaneDiff:
    lane: str
    a_core_pass: int
    a_core_n: int
    b_core_pass: int
    b_core_n: int
    a_pass_rate: float
    b_pass_rate: float
    a_ci95: list[Any]
    b_ci95: list[Any]
    paired: int  # prompts both sides ran
    worse: list[str]  # passed (majority) in A, failed in B
    better: list[str]  # failed in A, passed in B
    lost_core: list[str]  # core prompts among `worse`
    p_value: float
    significant: bool  # p < alpha
    regression: bool
    reasons: list[str]
    notes: list[str]  # identity changes: served model, fingerprint, suite

    @property
    def d_core_pass(self) -> int:
        return self.b_core_pass - self.a_core_pass

    @property
    def d_pass_rate(self) -> float:
        return self.b_pass_rate - self.a_pass_rate

    def to_dict(self) -> dict[str, Any]:
        d = attrs.asdict(self)
        d["d_core_pass"], d["d_pass_rate"] = self.d_core_pass, self.d_pass_rate
        return d


@attrs.define
class Comparison:
    a: str
    b: str
    alpha: float
    test: str
    lanes: list[LaneDiff]
    only_a: list[str]
    only_b: list[str]

    @property
    def regression(self) -> bool:
        return any(d.regression for d in self.lanes)

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "alpha": self.alpha, "test": self.test, "regression": self.regression,
                "lanes": [d.to_dict() for d in self.lanes], "only_a": self.only_a, "only_b": self.only_b}


TEST_NAME = "McNemar exact (two-sided) on per-prompt majority verdicts"


def _verdicts(sc: dict[str, Any]) -> dict[str, tuple[bool, bool]]:
    """prompt id -> (majority passed, core) for prompts that ran."""
    out = {}
    for p in sc.get("prompts") or ():
        if p.get("skipped") or not p.get("runs"):
            continue
        out[str(p.get("id"))] = (bool(p.get("majority_pass")), bool(p.get("core")))
    return out


def compare_lane(lane: str, a: dict[str, Any], b: dict[str, Any], alpha: float = 0.05) -> LaneDiff:
    va, vb = _verdicts(a), _verdicts(b)
    common = [pid for pid in va if pid in vb]
    worse = [pid for pid in common if va[pid][0] and not vb[pid][0]]
    better = [pid for pid in common if not va[pid][0] and vb[pid][0]]
    lost_core = [pid for pid in worse if va[pid][1] or vb[pid][1]]
    p = mcnemar_exact(len(worse), len(better))
    significant = p < alpha
    reasons = []
    if significant and len(worse) > len(better):
        reasons.append(f"significantly worse: {len(worse)} prompts passed -> failed, {len(better)} failed -> passed "
                       f"(McNemar exact p={p:.3g} < {alpha})")
    if lost_core:
        reasons.append(f"lost core prompt{'s' if len(lost_core) > 1 else ''} {', '.join(lost_core)}")
    notes = []
    la, lb = a.get("lane") or {}, b.get("lane") or {}
    for key, what in (("served_model", "served model"), ("fingerprint", "lane fingerprint (configuration)")):
        if la.get(key) != lb.get(key):
            notes.append(f"{what} changed: {la.get(key)} -> {lb.get(key)}")
    sa_, sb_ = a.get("suite") or {}, b.get("suite") or {}
    if sa_.get("sha256") != sb_.get("sha256"):
        notes.append(f"suite changed: {sa_.get('name')} {sa_.get('version')} ({str(sa_.get('sha256'))[:12]}) -> "
                     f"{sb_.get('name')} {sb_.get('version')} ({str(sb_.get('sha256'))[:12]}); "
                     f"flips are over the {len(common)} prompts both ran")
    if b.get("complete") is False or a.get("complete") is False:
        notes.append("a side is incomplete (errored or interrupted attempts): "
                     + "; ".join(str(x.get("incomplete_reason") or "") for x in (a, b) if x.get("complete") is False))
    return LaneDiff(
        lane=lane, a_core_pass=int(a.get("core_pass") or 0), a_core_n=int(a.get("core_n") or 0),
        b_core_pass=int(b.get("core_pass") or 0), b_core_n=int(b.get("core_n") or 0),
        a_pass_rate=float(a.get("pass_rate") or 0.0), b_pass_rate=float(b.get("pass_rate") or 0.0),
        a_ci95=list(a.get("pass_rate_ci95") or [None, None]), b_ci95=list(b.get("pass_rate_ci95") or [None, None]),
        paired=len(common), worse=worse, better=better, lost_core=lost_core, p_value=p, significant=significant,
        regression=bool(reasons), reasons=reasons, notes=notes,
    )


def compare(a_label: str, a: dict[str, dict[str, Any]], b_label: str, b: dict[str, dict[str, Any]],
            alpha: float = 0.05) -> Comparison:
    """``a``/``b``: scorecards by lane name. When each side holds exactly one lane (e.g.
    ``X@-1`` against ``X@latest``) they are compared even under different names."""
    if len(a) == 1 and len(b) == 1 and set(a) != set(b):
        (na, sa_), (nb, sb_) = next(iter(a.items())), next(iter(b.items()))
        diffs = [compare_lane(na if na == nb else f"{na} -> {nb}", sa_, sb_, alpha)]
        return Comparison(a_label, b_label, alpha, TEST_NAME, diffs, [], [])
    names = [n for n in a if n in b]
    diffs = [compare_lane(n, a[n], b[n], alpha) for n in names]
    return Comparison(a_label, b_label, alpha, TEST_NAME, diffs, sorted(set(a) - set(b)), sorted(set(b) - set(a)))


# --------------------------------------------------------------------------- text


def _ci(ci: list[Any]) -> str:
    if len(ci) == 2 and all(isinstance(x, (int, float)) for x in ci):
        return f"[{ci[0]:.2f}, {ci[1]:.2f}]"
    return "[n/a]"


def to_text(cmp: Comparison) -> str:
    lines = [f"compare {cmp.a} -> {cmp.b}  (test: {cmp.test}, alpha {cmp.alpha})"]
    if not cmp.lanes:
        lines.append("no lane is on both sides")
    for d in cmp.lanes:
        verdict = "REGRESSION" if d.regression else ("better" if d.better and not d.worse else "no regression")
        lines.append("")
        lines.append(f"{d.lane}: {verdict}")
        lines.append(f"  core_pass  {d.a_core_pass}/{d.a_core_n} -> {d.b_core_pass}/{d.b_core_n} ({d.d_core_pass:+d})")
        lines.append(f"  pass_rate  {d.a_pass_rate:.2f} {_ci(d.a_ci95)} -> {d.b_pass_rate:.2f} {_ci(d.b_ci95)} "
                     f"({d.d_pass_rate:+.2f})")
        lines.append(f"  flips over {d.paired} paired prompts: {len(d.worse)} passed -> failed, "
                     f"{len(d.better)} failed -> passed; p = {d.p_value:.3g}")
        if d.worse:
            lines.append(f"    passed -> failed: {', '.join(d.worse)}")
        if d.better:
            lines.append(f"    failed -> passed: {', '.join(d.better)}")
        for r in d.reasons:
            lines.append(f"  ! {r}")
        for n in d.notes:
            lines.append(f"  note: {n}")
    if cmp.only_a:
        lines.append(f"\nonly in {cmp.a}: {', '.join(cmp.only_a)}")
    if cmp.only_b:
        lines.append(f"\nonly in {cmp.b}: {', '.join(cmp.only_b)}")
    return "\n".join(lines)
