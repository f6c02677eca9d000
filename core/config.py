"""``hbench.toml`` and the cattrs converter used at every edge.

The converter is built after plugins register, so plugin kinds validate. Every error
names the file, the key path and the fix::

    hbench.toml: lanes.qwen.kind: unknown lane kind 'vlm' (installed: llamacpp, nim, openai, ...)
    hbench.toml: lanes.qwen: unknown key 'bsae_url' (allowed: api_key_env, base_url, ...)
"""

from __future__ import annotations

import math
import re
import shlex
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable
from urllib.parse import urlsplit

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

from hbench.errors import ConfigError
from hbench.limits import MAX_CONFIG_BYTES, LimitError, loads_toml, read_limited
from hbench.models import LaneSpec
from hbench.ranking import PREFERENCES
from hbench.report import scorecard_filename

if TYPE_CHECKING:
    from hbench.plugin_manager import Registries

DEFAULT_CONFIG = "hbench.toml"


@attrs.define
class RunDefaults:
    """The ``[run]`` table: defaults for ``hbench run`` options (CLI flags win)."""

    suite: str | None = None  # None: the suite a plugin registered as the default (registries.suites.default())
    lanes: str | None = None  # "all" or "a,b"
    runs: int | None = None  # None = the suite's default
    timeout_s: float | None = None
    max_turns: int | None = None
    concurrency: int = 1
    adaptive: bool = False
    core_only: bool = False
    out: str = "results"
    agent: str | None = None  # None: the agent a plugin registered as the default (registries.agents.default())
    report: str | None = None  # "json,md,html" (None = every reporter)
    sample_hz: float = 2.0
    memory_headroom_gb: float = 2.0
    #: GiB of MemAvailable below which a managed lane is not started or is stopped (None: 8 where
    #: memory is unified, e.g. DGX Spark / GB10, else no floor; 0 turns it off)
    memory_floor_gb: float | None = None
    max_consecutive_errors: int = 5  # a lane stops after this many errored attempts in a row (0 = never)
    prefer: str = "memory"  # what orders lanes tied on quality: memory | speed | latency
    tags: str | None = None  # "short": run only prompts with one of these tags
    categories: str | None = None  # "honesty,chain": run only prompts of these categories
    parallel_lanes: int = 1  # lanes at once (--parallel-lanes; managed lanes of one node one at a time)


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
    if isinstance(exc, TypeError) and str(exc).endswith("object is not iterable"):
        # a single value where a list belongs (sweep_depths = 256): cattrs says only "'int' object ..."
        key = path.rsplit(".", 1)[-1]
        got = str(exc).split("'")[1] if str(exc).count("'") >= 2 else "value"
        return f"{path}: expected a list, got a single {got}; write {key} = [...] (in brackets, comma-separated)"
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
        # utf-8-sig: a byte-order mark (Windows editors write one) is accepted
        raw = loads_toml(read_limited(path, MAX_CONFIG_BYTES).decode("utf-8-sig"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc} (check quotes and brackets on that line)") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text (save it as UTF-8)") from None
    except LimitError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read: {exc.strerror or exc}") from None
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
        else:
            problems.extend(f"{where}: run.{p}" for p in run_problems(cfg.run))
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
        if not name.strip():
            problems.append(f'{where}: lanes."{name}": a lane needs a name (write [lanes.my-lane])')
            continue
        table = dict(table)
        if isinstance(table.get("start"), str):  # start = "vllm serve x": split as a shell would
            try:
                table["start"] = shlex.split(table["start"])
            except ValueError as exc:
                problems.append(f"{where}: lanes.{name}.start: cannot split {table['start']!r} ({exc}); "
                                'write it as a list: start = ["vllm", "serve", "MODEL"]')
                continue
        try:
            spec = structure(conv, {**table, "name": name}, LaneSpec, where, f"lanes.{name}")
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        bad = lane_problems(spec)
        if bad:
            problems.extend(f"{where}: lanes.{name}.{p}" for p in bad)
            continue
        # no kind: the default lane kind (a plugin's, named once the registries are at hand: lanes.with_kind)
        if kinds is not None and spec.kind is not None and spec.kind not in kinds:
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
    problems.extend(f"{where}: {p}" for p in file_name_clashes(cfg.lanes, "lanes."))
    if problems:
        raise ConfigError("\n".join(problems), problems)
    return cfg


# --------------------------------------------------------------------------- values


def _positive(value: float | int | None, key: str, what: str, *, zero_ok: bool = False) -> str | None:
    """A problem line when ``value`` is not a finite number > 0 (>= 0 with ``zero_ok``)."""
    if value is None:
        return None
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        need = "0 or more" if zero_ok else "more than 0"
        return f"{key}: {value!r} is not usable: {what} must be a finite number, {need}"
    return None


def run_problems(run: RunDefaults) -> list[str]:
    """What is wrong with the values of a ``[run]`` table, each as ``key: message``."""
    out = [
        _positive(run.runs, "runs", "attempts per prompt"),
        _positive(run.timeout_s, "timeout_s", "seconds per attempt"),
        _positive(run.max_turns, "max_turns", "model turns per attempt"),
        _positive(run.concurrency, "concurrency", "attempts at once"),
        _positive(run.parallel_lanes, "parallel_lanes", "lanes at once"),
        _positive(run.sample_hz, "sample_hz", "telemetry samples per second"),
        _positive(run.memory_headroom_gb, "memory_headroom_gb", "headroom in GB", zero_ok=True),
        _positive(run.memory_floor_gb, "memory_floor_gb", "the memory floor in GiB (0 = off)", zero_ok=True),
        _positive(run.max_consecutive_errors, "max_consecutive_errors", "errored attempts in a row", zero_ok=True),
    ]
    if not run.out.strip():
        out.append('out: empty; name the results folder (out = "results"): an empty one would be the '
                   "current folder, whose files hbench does not own")
    if run.prefer not in PREFERENCES:
        out.append(f"prefer: {run.prefer!r} is not a preference (choose one of {', '.join(PREFERENCES)}: "
                   "what orders lanes tied on quality)")
    return [p for p in out if p]


def base_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a lane's base URL (http or https, with a host), or None."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        return f"{url!r} is not a URL ({exc}); write it like http://localhost:8000/v1"
    if parts.scheme not in ("http", "https") or not host:
        return (f"{url!r} is not an http(s) URL with a host; write it like http://localhost:8000/v1 "
                "(scheme, host, port and the /v1 path)")
    return None


#: a lane's ``node``: a Ray node label / custom resource name (``node:<name>``)
NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def lane_problems(spec: LaneSpec) -> list[str]:
    """What is wrong with a lane's values, each as ``key: message`` (the TOML key)."""
    out = [
        _positive(spec.temperature, "temperature", "the sampling temperature", zero_ok=True),
        _positive(spec.top_p, "top_p", "top_p", zero_ok=False),
        _positive(spec.max_tokens, "max_tokens", "tokens per reply"),
        _positive(spec.context_length, "context_length", "the context length"),
        _positive(spec.ready_timeout_s, "ready_timeout_s", "seconds to wait for the server"),
        _positive(spec.expected_memory_gb, "expected_memory_gb", "memory in GB", zero_ok=True),
        _positive(spec.memory_floor_gb, "memory_floor_gb", "the memory floor in GiB (0 = off)", zero_ok=True),
        _positive(spec.stop_grace_s, "stop_grace_s", "seconds", zero_ok=True),
        _positive(spec.memory_return_timeout_s, "memory_return_timeout_s", "seconds", zero_ok=True),
    ]
    if spec.top_p is not None and math.isfinite(spec.top_p) and spec.top_p > 1:
        out.append(f"top_p: {spec.top_p!r} is not usable: top_p is a probability, more than 0 and at most 1")
    if spec.start is not None and (not spec.start or not any(a.strip() for a in spec.start)):
        out.append('start: empty; give the command that starts the server (start = ["llama-server", "-m", '
                   '"model.gguf"]), or remove start for a server you started yourself')
    if spec.node is not None and not NODE_NAME.fullmatch(spec.node):
        out.append(f"node: {spec.node!r} is not a node name: 1-63 letters, digits, '.', '_' or '-' "
                   '(the Ray node label or box the lane runs on, like node = "spark2")')
    if spec.base_url is not None:
        why = base_url_problem(spec.base_url)
        if why:
            out.append(f"base_url: {why}")
    return [p for p in out if p]


def lane_file_name(name: str) -> str:
    """The name a lane's files get (``<lane>.json``), case-folded: two lanes with the same
    one would overwrite each other's scorecard (or do so on a case-insensitive disk)."""
    return scorecard_filename(name).casefold()


def file_name_clashes(lanes: dict[str, Any] | Iterable[str], prefix: str = "lane ") -> list[str]:
    """One line per group of lane names whose files would collide."""
    by_file: dict[str, list[str]] = {}
    for name in lanes:
        by_file.setdefault(lane_file_name(name), []).append(name)
    return [f"{prefix}{names[-1]}: lanes {', '.join(map(repr, names))} would all be written to "
            f"{scorecard_name(names[0])}; rename one (names differing only in case or punctuation "
            "share a file)" for names in by_file.values() if len(names) > 1]


def scorecard_name(name: str) -> str:
    return scorecard_filename(name)


def available_lanes(registries: Registries, config: Config) -> dict[str, LaneSpec]:
    """Every lane by name: plugin lanes (copies: a registered ``LaneSpec`` is never
    changed), overridden by hbench.toml lanes of the same name. The one lane listing
    (``hbench lanes``, ``doctor``, ``run``)."""
    lanes: dict[str, LaneSpec] = {}
    for e in registries.lanes.entries():
        spec = attrs.evolve(e.obj)
        spec.source = spec.source or f"plugin {e.plugin}"
        lanes[e.name] = spec
    lanes.update(config.lanes)
    return lanes
