"""Scorecards in and out of JSON, and the tables every report is built from.

The json reporter writes ``<lane>.json`` through :func:`scorecard_to_dict`;
``hbench report`` and third-party tools read them back with :func:`load_scorecard`.
The rank table, the per-prompt matrix, telemetry and latency rows are built here once
(:func:`build_tables`) so summary.md and report.html always agree with each other and
with ``hbench report``.

Nothing a scorecard holds may leak a secret or the user's home directory:
:func:`scorecard_to_dict` scrubs every string (``hbench.logging.scrub``), drops
credential-looking keys and replaces the home path with ``~``.
"""

from __future__ import annotations

import json
import math
import os
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import attrs
import cattrs

from hbench.errors import BadInput
from hbench.models import SCORECARD_SCHEMA, SCORECARD_SCHEMA_1_0, Scorecard

SCHEMA_FILE = "scorecard.schema.json"

#: keys whose values are credentials, never written (``api_key_env`` names a variable: kept)
_SECRET_KEY = re.compile(r"(?i)^(api[_-]?key|authorization|auth|token|access[_-]?token|secret|password|bearer)$")


class ScorecardError(BadInput):
    """A scorecard file cannot be read: the message names the file, the key and the fix."""


#: every scorecard schema this hbench reads: 1 and each minor version of it (a newer minor
#: only adds keys, which the reader tolerates)
_READABLE_SCHEMA = re.compile(r"^hbench\.scorecard/1(?:\.[0-9]+)?$")


def upgrade_1_0(data: dict[str, Any]) -> dict[str, Any]:
    """A ``hbench.scorecard/1`` scorecard in 1.1 terms (a copy): completeness from what it
    recorded (errored attempts, a failed lane, an interrupted run), the gate's status,
    ``provenance.host.hostname`` (1.0 runners wrote ``host.name``), and prompts that had no
    attempts (1.0 called them skipped, "no attempts ran") as planned but not run."""
    data = json.loads(json.dumps(data))
    prompts = [p for p in data.get("prompts") or [] if isinstance(p, dict)]
    for p in prompts:
        if p.get("skipped") == "no attempts ran":
            p["skipped"] = None
    planned = [p for p in prompts if p.get("skipped") is None]
    errored = sum(int(p.get("errors") or 0) for p in planned)
    runs = sum(int(p.get("runs") or 0) for p in planned)
    missing = sum(1 for p in planned if not p.get("runs"))
    warnings = [w for w in data.get("warnings") or [] if isinstance(w, str)]
    stopped = next((w.split(";")[0] for w in warnings if w.startswith("interrupted")), None)
    from hbench.scoring import incomplete_reason

    errs = [a.get("error") for p in planned for a in p.get("attempts") or [] if isinstance(a, dict) and a.get("error")]
    why = incomplete_reason(runs, errored, 0, errs, stopped=stopped, failed=data.get("failed"))
    if missing and why is None:
        why = f"{missing} planned prompt{'s' if missing != 1 else ''} did not run"
    data.setdefault("complete", why is None)
    data.setdefault("attempts_planned", runs)
    data.setdefault("attempts_scored", runs - errored)
    data.setdefault("errored", errored)
    data.setdefault("incomplete_reason", why)
    gate = data.get("gate")
    if isinstance(gate, dict) and "status" not in gate:
        gate["status"] = "passed" if gate.get("passed") else "failed"
        gated = [p for p in planned if p.get("gate")]
        if gate["status"] == "passed" and not any(p.get("runs") for p in gated):
            # 1.0 said "passed" without evidence (the gate prompt skipped or not run)
            gate.update(status="not evaluated", passed=None,
                        reason="honesty gate not evaluated: no gate prompt was scored (a 1.0 scorecard)")
            data["rankable"] = False
    host = (data.get("provenance") or {}).get("host")
    if isinstance(host, dict) and "hostname" not in host and isinstance(host.get("name"), str):
        host["hostname"] = host.pop("name")
    return data


# --------------------------------------------------------------------------- converter


@lru_cache(maxsize=1)
def converter() -> cattrs.Converter:
    """The scorecard converter. Extra keys are tolerated on read (a newer hbench may add
    keys within ``hbench.scorecard/1``); a missing or mistyped key is an error."""
    return cattrs.Converter(forbid_extra_keys=False)


# --------------------------------------------------------------------------- writing


def _home_pattern() -> re.Pattern[str] | None:
    homes = {os.path.expanduser("~"), os.environ.get("HOME") or ""}
    homes = {h.rstrip("/\\") for h in homes if h and h.rstrip("/\\")}
    if not homes:
        return None
    alts = "|".join(re.escape(h) for h in sorted(homes, key=len, reverse=True))
    # the home dir itself or followed by a separator; "/home/al" must not eat "/home/alice"
    return re.compile(rf"(?:{alts})(?=[/\\]|$|[^\w.\-])")


def sanitise_text(text: str, home: re.Pattern[str] | None = None) -> str:
    """Scrub registered secrets and replace the user's home directory with ``~``."""
    from hbench.logging import scrub

    text = scrub(text)
    home = home if home is not None else _home_pattern()
    return home.sub("~", text) if home is not None else text


def _sanitise(value: Any, home: re.Pattern[str] | None) -> Any:
    if isinstance(value, str):
        return sanitise_text(value, home)
    if isinstance(value, dict):
        return {
            sanitise_text(str(k), home): _sanitise(v, home)
            for k, v in value.items()
            if not _SECRET_KEY.match(str(k))
        }
    if isinstance(value, (list, tuple)):
        return [_sanitise(v, home) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN; the schema flags it where a number is required
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    if isinstance(value, os.PathLike):
        return sanitise_text(os.fspath(value), home)
    if attrs.has(type(value)):
        return _sanitise(converter().unstructure(value), home)
    return sanitise_text(str(value), home)


def sanitise_payload(value: Any) -> Any:
    """:func:`sanitise_text` over every string in a JSON-like structure (reports)."""
    return _sanitise(value, _home_pattern())


def scorecard_to_dict(scorecard: Scorecard) -> dict[str, Any]:
    """The JSON form of a scorecard (``hbench.scorecard/1``), sanitised, ``schema`` first."""
    raw = converter().unstructure(scorecard)
    raw["schema"] = SCORECARD_SCHEMA
    data = _sanitise(raw, _home_pattern())
    return {"schema": data.pop("schema"), **data}


def scorecard_filename(lane_name: str) -> str:
    """``<lane>.json``, with characters a file system would trip on replaced by ``_``."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", lane_name).strip("._") or "lane"
    return f"{safe}.json"


def write_json_atomic(path: Path, data: Any) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def write_text_atomic(path: Path, text: str) -> Path:
    """Write via a temporary file and a rename: a reader sees the old file or the new one.
    A failed write (a full disk) removes its temporary file instead of leaving it behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


# --------------------------------------------------------------------------- reading


def _where(path: str | Path) -> str:
    return sanitise_text(str(path))


def scorecard_from_dict(data: Any, source: str | Path = "<scorecard>") -> Scorecard:
    """Structure a parsed scorecard; errors name the file and every bad key path."""
    where = _where(source)
    if not isinstance(data, dict):
        raise ScorecardError(f"{where}: expected a JSON object (an hbench scorecard), got {type(data).__name__}")
    schema = data.get("schema")
    if not isinstance(schema, str) or not _READABLE_SCHEMA.match(schema):
        raise ScorecardError(
            f"{where}: schema is {schema!r}, this hbench reads {SCORECARD_SCHEMA_1_0!r} and "
            f"{SCORECARD_SCHEMA!r}; re-run the lane with this hbench version, or upgrade hbench"
        )
    if schema == SCORECARD_SCHEMA_1_0:
        data = upgrade_1_0(data)
    try:
        return converter().structure(data, Scorecard)
    except (cattrs.ClassValidationError, cattrs.IterableValidationError) as exc:
        problems = [f"{where}: {line}" for line in cattrs.transform_error(exc, path="scorecard")]
        raise ScorecardError(
            f"{where}: not a valid {SCORECARD_SCHEMA} scorecard:\n  " + "\n  ".join(problems)
            + "\n  (fix or regenerate the file; `hbench report` reads what `hbench run` writes)",
            problems,
        ) from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise ScorecardError(f"{where}: not a valid {SCORECARD_SCHEMA} scorecard: {exc}") from None


def load_scorecard(path: str | Path) -> Scorecard:
    """Read ``<lane>.json`` back into a :class:`~hbench.models.Scorecard`."""
    from hbench.limits import MAX_SCORECARD_BYTES, LimitError, loads_json, read_limited

    path = Path(path)
    where = _where(path)
    try:
        text = read_limited(path, MAX_SCORECARD_BYTES).decode("utf-8-sig")
    except FileNotFoundError:
        raise ScorecardError(f"{where}: no such scorecard file") from None
    except OSError as exc:
        raise ScorecardError(f"{where}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ScorecardError(f"{where}: not UTF-8 text; is this an hbench scorecard?") from None
    except LimitError as exc:
        raise ScorecardError(f"{where}: {exc}") from None
    try:
        data = loads_json(text)
    except LimitError as exc:
        raise ScorecardError(f"{where}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ScorecardError(f"{where}:{exc.lineno}:{exc.colno}: invalid JSON ({exc.msg})") from None
    return scorecard_from_dict(data, path)


def is_scorecard_file(path: Path) -> bool:
    """Cheap sniff: a ``.json`` whose top-level ``schema`` is ours (journal lines are not)."""
    if path.suffix != ".json" or path.name.startswith("."):
        return False
    try:
        with path.open("rb") as fh:
            head = fh.read(4096).decode("utf-8", "replace")
    except OSError:
        return False
    return SCORECARD_SCHEMA_1_0 in head  # "hbench.scorecard/1" is a prefix of every 1.x


def collect_scorecard_paths(inputs: Iterable[str | Path]) -> list[Path]:
    """Expand DIR_OR_FILES: a directory contributes every scorecard ``*.json`` in it (not
    recursive); a file is taken as given. Duplicates (same resolved path) are dropped."""
    out: list[Path] = []
    seen: set[Path] = set()
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.glob("*.json") if is_scorecard_file(f))
            if not found:
                raise ScorecardError(f"{_where(p)}: no scorecards (*.json with schema {SCORECARD_SCHEMA}) in this folder")
        elif p.exists():
            found = [p]
        else:
            raise ScorecardError(f"{_where(p)}: no such file or folder")
        for f in found:
            r = f.resolve()
            if r not in seen:
                seen.add(r)
                out.append(f)
    return out


# --------------------------------------------------------------------------- schema


def scorecard_schema() -> dict[str, Any]:
    """The JSON Schema of ``hbench.scorecard/1`` (shipped as package data)."""
    return json.loads(resources.files("hbench").joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))


def validate_scorecard(data: Any) -> None:
    """Validate a scorecard (dict, :class:`Scorecard` or path to ``<lane>.json``) against
    the shipped JSON Schema. Raises :class:`ScorecardError` listing every violation.

    For tests (``jsonschema`` is in the ``test`` extra)::

        from hbench.report import validate_scorecard
        validate_scorecard(out / "my-lane.json")
    """
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - the test extra has it
        raise ScorecardError("validating scorecards needs jsonschema: pip install 'hermes-bench[test]'") from None
    where = "<scorecard>"
    if isinstance(data, Scorecard):
        data = scorecard_to_dict(data)
    elif isinstance(data, (str, Path)):
        where = _where(data)
        data = json.loads(Path(data).read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(scorecard_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{where}: {'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}" for e in errors]
        raise ScorecardError(f"{where}: violates {SCORECARD_SCHEMA}:\n  " + "\n  ".join(lines), lines)


# --------------------------------------------------------------------------- tables
# Everything below is pure: scorecards in, rows of display strings out. summary.md,
# report.html and `hbench report` all render these same rows.

DASH = "–"  # shown where a figure is unknown (never 0)


def suite_key(sc: Scorecard) -> tuple[str, str]:
    """What makes two scorecards comparable: the suite and fixture hashes."""
    return (str(sc.suite.get("sha256", "")), str(sc.suite.get("fixtures_sha256", "")))


def suite_label(sc: Scorecard) -> str:
    s = sc.suite
    return f"{s.get('name', '?')} {s.get('version', '')} @{str(s.get('sha256', ''))[:8]}".replace("  ", " ")


def prompt_set(sc: Scorecard) -> tuple[str, ...]:
    """The prompts a lane was planned to run (every prompt not skipped), sorted: lanes
    are ranked together only when they ran the same prompt set of the same suite."""
    return tuple(sorted(p.id for p in sc.prompts if p.skipped is None))


def comparable_key(sc: Scorecard) -> tuple[Any, ...]:
    """Scorecards with equal keys are ranked together: same suite, fixtures, prompt set."""
    return (*suite_key(sc), prompt_set(sc))


def group_label(sc: Scorecard, scorecards: Iterable[Scorecard]) -> str:
    """The suite, and the prompts of that suite other lanes ran and this one did not."""
    mine = set(prompt_set(sc))
    union = set().union(*(prompt_set(c) for c in scorecards if suite_key(c) == suite_key(sc)))
    left_out = sorted(union - mine)
    return f"{suite_label(sc)}, {len(mine)} prompts" + (f" (without {', '.join(left_out)})" if left_out else "")


def check_suites(scorecards: list[Scorecard], allow_mixed: bool) -> bool:
    """True when the scorecards are not all comparable: more than one suite (hash), or
    one suite but different prompt sets (``--core-only``, conditional prompts an agent
    could not serve, ``--tags``). Refuses that with a :class:`ScorecardError` naming each
    lane's suite and prompt set unless ``allow_mixed`` (then each set is ranked apart)."""
    keys = {comparable_key(sc) for sc in scorecards}
    if len(keys) <= 1:
        return False
    if not allow_mixed:
        if len({suite_key(sc) for sc in scorecards}) > 1:
            lines = [f"{lane_name(sc)}: suite {suite_label(sc)} (fixtures @{suite_key(sc)[1][:8]})"
                     for sc in scorecards]
            raise ScorecardError(
                "these scorecards come from different suites (hashes differ), so their scores are not "
                "comparable:\n  " + "\n  ".join(lines)
                + "\n  run every lane on the same suite, or pass --allow-mixed to compare anyway "
                "(each suite is ranked in a table of its own)", lines)
        lines = [f"{lane_name(sc)}: {group_label(sc, scorecards)}" for sc in scorecards]
        raise ScorecardError(
            "these lanes ran different prompt sets of the same suite (--core-only, --tags, or a "
            "conditional prompt an agent could not serve), so their scores are not comparable:\n  "
            + "\n  ".join(lines)
            + "\n  run every lane on the same prompts, or pass --allow-mixed to show each prompt set "
            "in a table of its own", lines)
    return True


def lane_name(sc: Scorecard) -> str:
    return str(sc.lane.get("name") or "?")


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


TELEMETRY_HEADER = ["Lane", "samples", "GPU util mean", "GPU util max", "peak unified", "GPU temp max"]
LATENCY_HEADER = ["Lane", "p50", "p95", "max", "TTFT"]
RANK_HEADER = ["Rank", "Lane", "Agent", "core_pass", "pass_rate (95% CI)", "consistency", "runaway",
               "tok/s", "peak unified"]


def _agent(sc: Scorecard) -> str:
    name = sc.agent.get("name") if isinstance(sc.agent, dict) else None
    return str(name or "builtin")


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
    from hbench.scoring import category_figures, rank

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
    for lane in lanes:
        sc = by_lane[lane]
        t, lat = sc.telemetry, sc.latency
        mem, which = peak_memory_gb(sc)
        telemetry.append([lane, str(t.n_samples), num(t.gpu_util_mean, ".0f", "%"), num(t.gpu_util_max, ".0f", "%"),
                          num(t.unified_used_gb_max, ".1f", " GB"), num(t.gpu_temp_c_max, ".0f", " °C")])
        latency.append([lane, seconds(lat.p50_s), seconds(lat.p95_s), seconds(lat.max_s),
                        num(sc.throughput.ttft_ms, ".0f", " ms")])
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
    )


# --------------------------------------------------------------------------- markdown


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


def category_cell(fig: dict[str, Any] | None) -> str:
    """One lane's figures for one category: ``core 3/4 · 72%`` (``72%`` without core prompts)."""
    if not fig:
        return DASH
    rate = pct(fig.get("pass_rate"))
    return f"core {fig.get('core_pass', 0)}/{fig['core_n']} · {rate}" if fig.get("core_n") else rate


def category_md(t: Tables) -> list[str]:
    """The per-category table: a row per category, a column per lane."""
    header = ["Category", "prompts"] + t.lanes
    rows = []
    for c in t.categories:
        n = max((t.category_figures[lane].get(c, {}).get("n", 0) for lane in t.lanes), default=0)
        rows.append([c, str(n)] + [category_cell(t.category_figures[lane].get(c)) for lane in t.lanes])
    return md_table(header, rows, "lr" + "r" * len(t.lanes))


def decided_lines(t: Tables) -> list[str]:
    """One line per group of lanes tied on quality: which preference ordered it, by how much."""
    return [r.decided_by for r in t.ranked if r.decided_by]


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


COST_HEADER = ["Lane", "ready (s)", "resting memory", "s / solved", "tokens / solved", "goodput (SLO)",
               "turn p95 (s)"]


def cost_md(t: Tables) -> list[str]:
    """What a brain swap and a solve cost (ready_s, resting memory, efficiency); nothing when
    no scorecard carries these figures (older scorecards)."""
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
                     DASH if good is None else f"{pct(good)}" + (f" (≤{slo:g} s)" if slo else ""),
                     num(eff.get("turn_p95_s"), ".1f")])
    if not rows:
        return []
    return ["", "## Cost (ready = start to a 1-token answer; per solved attempt, failures included)", "",
            *md_table(COST_HEADER, rows)]


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
    lines += md_table(TELEMETRY_HEADER, t.telemetry)
    lines += ["", "## Latency (attempt wall time; TTFT from the throughput probe)", ""]
    lines += md_table(LATENCY_HEADER, t.latency)
    lines += cost_md(t)
    failed = [(lane, t.scorecards[lane].failed) for lane in t.lanes if t.scorecards[lane].failed]
    warns = [(lane, w) for lane in t.lanes for w in t.scorecards[lane].warnings]
    if failed or warns:
        lines += ["", "## Notes", ""]
        lines += [f"- {md_cell(lane)}: failed to run: {md_cell(why)}" for lane, why in failed]
        lines += [f"- {md_cell(lane)}: {md_cell(w)}" for lane, w in warns]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- hbench report


def rebuild_reports(
    inputs: list[str | Path],
    out_dir: str | Path | None = None,
    *,
    allow_mixed: bool = False,
    reporters: list[str] | None = None,
    registries: Any = None,
    prefer: str = "memory",
) -> list[Path]:
    """``hbench report``: read scorecards (files, or folders of them), then write
    summary.md and report.html (or the named reporters) into ``out_dir``. ``prefer``
    orders lanes tied on quality (``--prefer``).

    ``out_dir`` defaults to the input folder (or the first file's folder). When that
    folder holds the run's ``journal.jsonl``, the HTML report includes transcripts.
    """
    if registries is None:
        from hbench.plugin_manager import get_registries

        registries = get_registries()
    if not inputs:
        raise ScorecardError("name at least one scorecard file or results folder: hbench report results/")
    paths = collect_scorecard_paths(inputs)
    cards = [load_scorecard(p) for p in paths]
    check_suites(cards, allow_mixed)  # refuse before writing anything
    first = Path(inputs[0])
    base = first if first.is_dir() else paths[0].parent
    out = Path(out_dir) if out_dir is not None else base
    journal = base / "journal.jsonl"
    names = reporters or [n for n in registries.reporters.names()
                          if getattr(registries.reporters.get(n), "default_for_report", False)]
    for n in names:
        if n not in registries.reporters:
            raise ScorecardError(registries.reporters.unknown(n) + "; choose with --report NAME,...")
    context = {"journal": journal if journal.is_file() else None, "suite": None, "allow_mixed": allow_mixed,
               "prefer": prefer}
    written: list[Path] = []
    for n in names:
        written += list(registries.reporters.get(n).write(cards, out, context) or [])
    return written
