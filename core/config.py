"""``hbench.toml`` and the cattrs converter used at every edge.

The converter is built after plugins register, so plugin kinds validate. Every error
names the file, the key path and the fix::

    hbench.toml: lanes.qwen.kind: unknown lane kind 'vlm' (installed: llamacpp, nim, openai, ...)
    hbench.toml: lanes.qwen: unknown key 'bsae_url' (allowed: api_key_env, base_url, ...)
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Iterable

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

from hbench.errors import ConfigError
from hbench.models import LaneSpec

DEFAULT_CONFIG = "hbench.toml"


@attrs.define
class RunDefaults:
    """The ``[run]`` table: defaults for ``hbench run`` options (CLI flags win)."""

    suite: str = "hermes-brain"
    lanes: str | None = None  # "all" or "a,b"
    runs: int | None = None  # None = the suite's default
    timeout_s: float | None = None
    max_turns: int | None = None
    concurrency: int = 1
    adaptive: bool = False
    core_only: bool = False
    out: str = "results"
    agent: str = "builtin"
    report: str | None = None  # "json,md,html" (None = every reporter)
    sample_hz: float = 2.0
    memory_headroom_gb: float = 2.0


@attrs.define
class Config:
    lanes: dict[str, LaneSpec] = attrs.field(factory=dict)
    run: RunDefaults = attrs.field(factory=RunDefaults)
    path: str | None = None  # the file it came from, None = no file


def make_converter() -> cattrs.Converter:
    """A converter that refuses unknown keys. Build it after plugins have registered."""
    conv = cattrs.Converter(forbid_extra_keys=True)
    # TOML/JSON give ints where floats are declared; accept them, refuse bools and strings.
    def _float(v: Any, _t: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"expected a number, got {v!r}")
        return float(v)

    def _int(v: Any, _t: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"expected an integer, got {v!r}")
        return v

    def _str(v: Any, _t: Any) -> str:
        if not isinstance(v, str):
            raise ValueError(f"expected a string, got {v!r}")
        return v

    def _bool(v: Any, _t: Any) -> bool:
        if not isinstance(v, bool):
            raise ValueError(f"expected true or false, got {v!r}")
        return v

    conv.register_structure_hook(float, _float)
    conv.register_structure_hook(int, _int)
    conv.register_structure_hook(str, _str)
    conv.register_structure_hook(bool, _bool)
    return conv


def _fields_of(cl: type) -> list[str]:
    try:
        return sorted(f.name for f in attrs.fields(cl) if f.init)
    except Exception:  # noqa: BLE001
        return []


def _format(exc: BaseException, path: str) -> str:
    if isinstance(exc, ForbiddenExtraKeysError):
        extra = ", ".join(repr(k) for k in sorted(exc.extra_fields))
        allowed = ", ".join(k for k in _fields_of(exc.cl) if k not in ("source", "line"))
        return f"{path}: unknown key {extra} (allowed: {allowed})"
    if isinstance(exc, KeyError):
        return f"{path}: required key missing"
    return f"{path}: {exc}"


def error_lines(exc: BaseException, where: str, root: str = "") -> list[str]:
    """Turn a cattrs error into ``where: key.path: message (fix)`` lines, one per problem."""
    out: list[str] = []

    def walk(e: BaseException, path: str) -> None:
        if isinstance(e, (ClassValidationError, IterableValidationError)):
            if isinstance(e, ClassValidationError):
                with_notes, without = e.group_exceptions()
            else:
                with_notes, without = e.group_exceptions()
            for sub, note in with_notes:
                name = getattr(note, "name", None)
                if name is None:
                    name = getattr(note, "index", None)
                sub_path = f"{path}.{name}" if path else str(name)
                if isinstance(sub, KeyError):
                    out.append(f"{where}: {sub_path}: required key missing")
                else:
                    walk(sub, sub_path)
            for sub in without:
                walk(sub, path)
        elif isinstance(e, ExceptionGroup):
            for sub in e.exceptions:
                walk(sub, path)
        else:
            out.append(f"{where}: {_format(e, path or '(top level)')}")

    walk(exc, root)
    return out


def structure(conv: cattrs.Converter, data: Any, cl: type, where: str, root: str = "") -> Any:
    """``conv.structure`` that raises :class:`ConfigError` with every problem listed."""
    try:
        return conv.structure(data, cl)
    except Exception as exc:  # noqa: BLE001
        lines = error_lines(exc, where, root)
        raise ConfigError("\n".join(lines), lines) from None


def find_config(explicit: str | Path | None = None) -> Path | None:
    if explicit is not None:
        p = Path(explicit)
        if not p.is_file():
            raise ConfigError(f"{p}: no such config file (pass --config PATH to an hbench.toml)")
        return p
    p = Path.cwd() / DEFAULT_CONFIG
    return p if p.is_file() else None


def load_config(explicit: str | Path | None = None, lane_kinds: Iterable[str] | None = None) -> Config:
    """Read ``hbench.toml`` (or ``explicit``); validate lane kinds against ``lane_kinds``."""
    path = find_config(explicit)
    if path is None:
        return Config()
    where = path.name if explicit is None else str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc} (check quotes and brackets on that line)") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text (save it as UTF-8)") from None
    problems: list[str] = []
    unknown = sorted(set(raw) - {"lanes", "run"})
    if unknown:
        problems.append(f"{where}: unknown table {', '.join(map(repr, unknown))} (allowed: [lanes.NAME], [run])")
    conv = make_converter()
    cfg = Config(path=str(path))
    if "run" in raw:
        try:
            cfg.run = structure(conv, raw["run"], RunDefaults, where, "run")
        except ConfigError as exc:
            problems.extend(exc.problems)
    lanes_raw = raw.get("lanes", {})
    if not isinstance(lanes_raw, dict):
        problems.append(f"{where}: lanes: expected tables [lanes.NAME]")
        lanes_raw = {}
    kinds = sorted(lane_kinds) if lane_kinds is not None else None
    for name, table in lanes_raw.items():
        if not isinstance(table, dict):
            problems.append(f"{where}: lanes.{name}: expected a table [lanes.{name}]")
            continue
        if "name" in table or "source" in table:
            problems.append(f"{where}: lanes.{name}: 'name'/'source' are set by hbench; remove them")
            continue
        try:
            spec = structure(conv, {**table, "name": name}, LaneSpec, where, f"lanes.{name}")
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        if kinds is not None and spec.kind not in kinds:
            problems.append(
                f"{where}: lanes.{name}.kind: unknown lane kind {spec.kind!r} (installed: {', '.join(kinds)})"
            )
            continue
        if spec.api_key_env is not None and not spec.api_key_env.replace("_", "").isalnum():
            problems.append(
                f"{where}: lanes.{name}.api_key_env: must name an environment variable "
                f"(like OPENAI_API_KEY), not hold the key itself"
            )
            continue
        spec.source = where
        cfg.lanes[name] = spec
    if problems:
        raise ConfigError("\n".join(problems), problems)
    return cfg
