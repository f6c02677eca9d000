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
from hbench.models import SCORECARD_SCHEMA, Scorecard

SCHEMA_FILE = "scorecard.schema.json"

#: keys whose values are credentials, never written (``api_key_env`` names a variable: kept)
_SECRET_KEY = re.compile(r"(?i)^(api[_-]?key|authorization|auth|token|access[_-]?token|secret|password|bearer)$")


class ScorecardError(BadInput):
    """A scorecard file cannot be read: the message names the file, the key and the fix."""


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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
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
    if schema != SCORECARD_SCHEMA:
        raise ScorecardError(
            f"{where}: schema is {schema!r}, this hbench reads {SCORECARD_SCHEMA!r}; "
            "re-run the lane with this hbench version, or upgrade hbench"
        )
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
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScorecardError(f"{where}: no such scorecard file") from None
    except OSError as exc:
        raise ScorecardError(f"{where}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ScorecardError(f"{where}: not UTF-8 text; is this an hbench scorecard?") from None
    try:
        data = json.loads(text)
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
    return SCORECARD_SCHEMA in head


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
