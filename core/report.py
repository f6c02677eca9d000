"""The scorecard file: ``<lane>.json`` in and out of JSON, its schema, and which
scorecards are comparable; ``hbench report`` (:func:`rebuild_reports`) over them.

The json reporter writes ``<lane>.json`` through :func:`scorecard_to_dict`;
``hbench report`` and third-party tools read them back with :func:`load_scorecard`.
Presenting them (the rank table, the matrix, every row a report shows) is the
reporters' job: ``hbench.plugins.reporters.tables``.

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
from hbench.limits import MAX_SCORECARD_BYTES, LimitError, loads_json, read_limited
from hbench.logging import scrub
from hbench.models import SCORECARD_SCHEMA, SCORECARD_SCHEMA_1_0, Scorecard
from hbench.plugin_manager import get_registries
from hbench.scoring import incomplete_reason

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


# --------------------------------------------------------------------------- comparability


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
