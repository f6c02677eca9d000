"""The ``hermes`` agent driver: runs Nous Research's real Hermes agent per attempt.

The built-in loop answers "how good is the model"; this driver answers "how good is my
agent on this model": Hermes' own system prompt, tools and streaming, against the lane.
Facts it relies on (hermes-agent 0.19.0) are in docs/HERMES.md.

Per attempt (memory and skills never carry over between lanes or attempts):

* a fresh ``HERMES_HOME`` and ``HOME`` under the attempt context's ``work_dir`` (outside
  the scratch copy), with a generated ``config.yaml``: provider ``custom``, the lane's
  ``base_url`` and model, ``context_length``, ``max_tokens``, environment probe off,
  lazy installs off. The API key is never written to disk: the config says
  ``${HBENCH_HERMES_API_KEY}`` and the key travels in that environment variable;
* ``hermes -z PROMPT -t file,terminal --usage-file U`` with cwd and ``TERMINAL_CWD`` =
  the scratch copy, in its own process group (killed as a group on timeout: runaway
  ``timeout``), with an allow-listed environment (the user's other API keys never reach
  an agent whose ``terminal`` tool runs anything);
* success is read from the usage file (``completed``/``failed``), never from the exit
  code: a failed run exits 0 and prints the error where the answer would be;
* the trace comes from ``hermes sessions export - --session-id ID``: tool calls, the
  final answer, the transcript and one Turn per model reply go into the Attempt.

Hermes runs its own loop (``-z`` ignores ``agent.max_turns``: it allows 90 model calls),
so ``max_turns`` is applied afterwards: an attempt that used more model calls than the
suite allows is a ``max_turns`` runaway, as it would have been in the built-in loop.
"""

from __future__ import annotations

import bisect
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping, Sequence

from hbench.agents import Agent, AttemptContext
from hbench.logging import get_logger, register_secret, scrub
from hbench.models import Attempt, LaneSpec, ToolCall, Turn

#: the hermes-agent release this driver was written and tested against
PINNED_VERSION = "0.19.0"
INSTALL_HINT = (
    f"python -m venv ~/.hermes-venv && ~/.hermes-venv/bin/pip install hermes-agent=={PINNED_VERSION}"
)
DEFAULT_BIN = "~/.hermes-venv/bin/hermes"
BIN_ENV = "HBENCH_HERMES_BIN"
#: the environment variable the generated config reads the lane's API key from
KEY_ENV = "HBENCH_HERMES_API_KEY"
#: pinned toolsets: what Hermes offers otherwise depends on the machine
TOOLSETS = "file,terminal"
#: Hermes refuses a model whose context window is below this (MINIMUM_CONTEXT_LENGTH)
HERMES_MIN_CONTEXT = 64_000
#: how much of each tool result the Attempt keeps (the session export holds it all)
RESULT_CAP = 4000
EXPORT_TIMEOUT_S = 60.0
#: how long Hermes may take to start its MCP servers (a cold Python + mcp import: seconds)
MCP_DISCOVERY_TIMEOUT_S = 120
KILL_GRACE_S = 2.0

#: environment variables passed through to Hermes (everything else is dropped)
ENV_ALLOW = ("PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM", "SSL_CERT_FILE", "SSL_CERT_DIR",
             "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")

#: Hermes tool name -> tokens of hbench's tool vocabulary it satisfies
TOOL_ALIASES: dict[str, tuple[str, ...]] = {
    "search_files": ("list", "ls", "glob", "grep", "find"),
    "read_file": ("read",),
}

#: a ``terminal`` command whose first word is one of these also satisfies the tokens
TERMINAL_ALIASES: dict[str, tuple[str, ...]] = {
    "ls": ("list", "ls"),
    "find": ("list", "find", "glob"),
    "tree": ("list",),
    "cat": ("read",),
    "head": ("read",),
    "tail": ("read",),
    "grep": ("grep",),
    "rg": ("grep",),
}

#: Hermes' own answer to a call of a tool it does not offer
_UNKNOWN_TOOL = re.compile(r"^Tool '(?P<name>[^']*)' does not exist\.")
#: the user message Hermes injects when it hits its own iteration limit
_MAX_ITER_MARK = "You've reached the maximum number of tool-calling iterations"
_VERSION_DIR = re.compile(r"^hermes_agent-(?P<v>[^-]+)\.dist-info$")


# --------------------------------------------------------------------------- finding hermes


def find_hermes_bin(lane: LaneSpec | None = None) -> tuple[Path | None, str]:
    """``(path or None, where it came from)``: the lane's ``agent_options["hermes_bin"]``,
    then ``$HBENCH_HERMES_BIN``, then ``hermes`` on ``PATH`` (pipx, ``uv tool``), then
    ``~/.hermes-venv/bin/hermes``. The first one set wins; it must be an executable file."""
    if lane is not None and lane.agent_options.get("hermes_bin"):
        raw, source = str(lane.agent_options["hermes_bin"]), f"lane {lane.name!r} agent_options.hermes_bin"
    elif os.environ.get(BIN_ENV):
        raw, source = os.environ[BIN_ENV], f"${BIN_ENV}"
    elif shutil.which("hermes"):
        raw, source = str(shutil.which("hermes")), "PATH"
    else:
        raw, source = DEFAULT_BIN, "not on PATH; default"
    path = Path(os.path.expanduser(raw))
    if path.is_file() and os.access(path, os.X_OK):
        return path.absolute(), source
    return None, f"{source}: {path}"


@lru_cache(maxsize=16)
def hermes_version(bin_path: Path) -> str | None:
    """The hermes-agent version installed next to ``bin_path`` (read from its venv's
    ``*.dist-info``: ``hermes --version`` checks for updates over the network)."""
    venv = bin_path.resolve().parent.parent
    for site in sorted(venv.glob("lib/python*/site-packages")) + [venv / "Lib" / "site-packages"]:
        if not site.is_dir():
            continue
        for entry in site.iterdir():
            m = _VERSION_DIR.match(entry.name)
            if m:
                return m.group("v")
    return None


#: ``agent_options`` this driver reads, and the type each must have
OPTIONS: dict[str, tuple[type, ...]] = {
    "hermes_bin": (str,), "context_length": (int,), "max_tokens": (int,), "toolsets": (str,),
    "hermes_config": (dict,), "env": (dict,), "keep_home": (bool,),
}


def option_problems(lane: LaneSpec) -> list[str]:
    """What is wrong with ``lane.agent_options`` for this driver (empty when nothing)."""
    out = []
    for key, value in lane.agent_options.items():
        where = f"lane {lane.name!r} agent_options.{key}"
        if key not in OPTIONS:
            out.append(f"{where}: unknown option for the hermes agent (known: {', '.join(sorted(OPTIONS))})")
        elif isinstance(value, bool) and bool not in OPTIONS[key] or not isinstance(value, OPTIONS[key]):
            want = " or ".join("table" if t is dict else t.__name__ for t in OPTIONS[key])
            out.append(f"{where}: expected {want}, got {value!r}")
    return out


def not_found_message(where: str) -> str:
    return f"hermes: not found ({where}); install with {INSTALL_HINT}"


# --------------------------------------------------------------------------- pure parts


def bucket_sessions(prompt_starts: Sequence[tuple[str, float]],
                    sessions: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """The published rule for exports that carry no session id: each session belongs to
    the **last** prompt whose start time is <= the session's ``started_at``. Buckets are
    mutually exclusive and there is no padding window: a session that started before
    every prompt belongs to none. Prompts with equal starts: the later one in
    ``prompt_starts`` wins. Every key of ``prompt_starts`` gets a (maybe empty) list;
    sessions keep their input order inside a bucket.
    """
    order = sorted(range(len(prompt_starts)), key=lambda i: prompt_starts[i][1])  # stable
    starts = [float(prompt_starts[i][1]) for i in order]
    out: dict[str, list[Mapping[str, Any]]] = {key: [] for key, _ in prompt_starts}
    for s in sessions:
        try:
            t = float(s["started_at"])
        except (KeyError, TypeError, ValueError):
            continue  # no start time: cannot be placed, and is never guessed
        i = bisect.bisect_right(starts, t)
        if i:
            out[prompt_starts[order[i - 1]][0]].append(s)
    return out


def aliases_for_call(call: ToolCall) -> tuple[str, ...]:
    """Extra tool tokens one Hermes tool call satisfies (``search_files`` -> list, ...;
    ``terminal`` running ``ls`` -> list)."""
    if call.name in TOOL_ALIASES:
        return TOOL_ALIASES[call.name]
    if call.name == "terminal" and isinstance(call.arguments, dict):
        command = str(call.arguments.get("command") or "")
        out: list[str] = []
        for segment in re.split(r"&&|\|\||[;|\n]", command):
            try:
                words = shlex.split(segment)
            except ValueError:  # unbalanced quotes: fall back to whitespace
                words = segment.split()
            while words and ("=" in words[0] or words[0] in ("sudo", "env", "command", "cd")):
                words = words[2:] if words[0] == "cd" else words[1:]
            if words:
                out.extend(TERMINAL_ALIASES.get(os.path.basename(words[0]), ()))
        return tuple(dict.fromkeys(out))
    return ()


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts
        return "".join(str(p.get("text", "")) if isinstance(p, dict) else str(p) for p in content)
    return str(content)


def _tool_error(result: str) -> str | None:
    """The error a Hermes tool result carries, or None (results are JSON or text)."""
    m = _UNKNOWN_TOOL.match(result)
    if m:
        return f"unknown tool {m.group('name')!r}"
    try:
        obj = json.loads(result)
    except ValueError:
        return None
    if isinstance(obj, dict) and obj.get("error"):
        return str(obj["error"])[:500]
    return None


def parse_export(text: str) -> list[dict[str, Any]]:
    """The sessions in ``hermes sessions export`` JSONL (one session row per line, with its
    ``messages``). Lines that are not JSON objects are skipped."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def fill_from_sessions(attempt: Attempt, sessions: Sequence[Mapping[str, Any]]) -> None:
    """Fill ``answer``, ``tool_calls``, ``transcript``, ``turns``, ``format_errors`` and
    ``unknown_tools`` of ``attempt`` from the exported session(s) of one attempt
    (several when Hermes split the run; they are taken in ``started_at`` order)."""
    sessions = sorted(sessions, key=lambda s: float(s.get("started_at") or 0.0))
    messages: list[Mapping[str, Any]] = []
    for s in sessions:
        messages.extend(sorted(s.get("messages") or [], key=lambda m: (m.get("timestamp") or 0.0, m.get("id") or 0)))
    calls: dict[str, ToolCall] = {}
    ordered: list[ToolCall] = []
    transcript: list[dict[str, Any]] = []
    turns: list[Turn] = []
    answer = ""
    prev_ts: float | None = float(sessions[0]["started_at"]) if sessions and sessions[0].get("started_at") else None
    for m in messages:
        role = m.get("role")
        content = scrub(_text(m.get("content")))
        entry: dict[str, Any] = {"role": role, "content": content}
        ts = m.get("timestamp")
        if role == "assistant":
            raw_calls = m.get("tool_calls") or []
            if raw_calls:
                entry["tool_calls"] = []
            for i, rc in enumerate(raw_calls):
                fn = rc.get("function") or {}
                name = str(fn.get("name") or "")
                raw_args = fn.get("arguments")
                fmt_error = False
                if isinstance(raw_args, str):
                    try:
                        args: Any = json.loads(raw_args) if raw_args.strip() else {}
                    except ValueError:
                        args, fmt_error = raw_args, True
                else:
                    args = raw_args if raw_args is not None else {}
                if fmt_error or not isinstance(args, dict):
                    fmt_error = True
                call_id = str(rc.get("id") or rc.get("call_id") or f"call_{len(ordered)}_{i}")
                tc = ToolCall(name=name, arguments=args, id=call_id, format_error=fmt_error)
                calls[call_id] = tc
                ordered.append(tc)
                entry["tool_calls"].append({"id": call_id, "name": name, "arguments": scrub(
                    raw_args if isinstance(raw_args, str) else json.dumps(raw_args))})
            if ts is not None and prev_ts is not None:
                wall = max(0.0, float(ts) - prev_ts)
            else:
                wall = 0.0
            turns.append(Turn(wall_s=round(wall, 4), finish_reason=m.get("finish_reason"),
                              completion_tokens=m.get("token_count")))
            if not raw_calls and content.strip():
                answer = content
        elif role == "tool":
            call_id = str(m.get("tool_call_id") or "")
            entry["tool_call_id"] = call_id
            if m.get("tool_name"):
                entry["name"] = m.get("tool_name")
            tc = calls.get(call_id)
            if tc is not None:
                tc.result = content[:RESULT_CAP]
                err = _tool_error(content)
                if err:
                    tc.ok, tc.error = False, err
        if ts is not None:
            prev_ts = float(ts)
        transcript.append(entry)
    attempt.tool_calls = ordered
    attempt.transcript = transcript
    attempt.turns = turns
    attempt.answer = answer
    attempt.format_errors = sum(1 for tc in ordered if tc.format_error)
    unknown = sum(1 for tc in ordered if tc.error and tc.error.startswith("unknown tool"))
    attempt.unknown_tools = unknown
    if any(m.get("role") == "user" and _MAX_ITER_MARK in _text(m.get("content")) for m in messages):
        attempt.runaway = attempt.runaway or "max_turns"


def build_config(*, base_url: str, model: str, context_length: int, max_tokens: int,
                 max_turns: int, with_key: bool, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``config.yaml`` of one attempt, as a dict. ``extra`` (a lane's
    ``agent_options.hermes_config``) is merged in last, table by table."""
    cfg: dict[str, Any] = {
        "model": {"provider": "custom", "default": model, "base_url": base_url,
                  "context_length": context_length, "max_tokens": max_tokens},
        "auxiliary": {"compression": {"context_length": context_length}},
        "agent": {"max_turns": max_turns, "environment_probe": False},
        "security": {"allow_lazy_installs": False},
    }
    if with_key:  # expanded by Hermes from its environment: the key never touches disk
        cfg["model"]["api_key"] = "${" + KEY_ENV + "}"
    return _merge(cfg, extra or {})


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(out.get(k), dict) and isinstance(v, Mapping) else v
    return out


def render_config(cfg: Mapping[str, Any]) -> str:
    """YAML text for Hermes: JSON is YAML, and JSON quoting cannot go wrong."""
    return json.dumps(cfg, indent=2, sort_keys=True) + "\n"


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="milliseconds")


def _tail(path: Path, chars: int = 400) -> str:
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return ""
    return scrub(text[-chars:])


# --------------------------------------------------------------------------- the driver


class HermesAgent(Agent):
    """Drives ``hermes -z`` per attempt; see the module docstring."""

    name: ClassVar[str] = "hermes"
    version: ClassVar[str] = PINNED_VERSION  # describe() reports the installed one
    tool_aliases: ClassVar[dict[str, tuple[str, ...]]] = TOOL_ALIASES

    @property
    def capabilities(self) -> frozenset[str]:  # type: ignore[override]
        """``mcp`` when hbench and Hermes' venv both have the ``mcp`` package: each
        attempt's config then lists ``hbench mcp-serve`` on the scratch copy and the
        suite's own MCP servers (hbench.plugins.mcp.hermes_config)."""
        from hbench.plugins.mcp.hermes_config import mcp_ready

        return frozenset({"mcp"}) if mcp_ready(find_hermes_bin()[0])[0] else frozenset()

    def usable(self) -> tuple[bool, str]:
        path, where = find_hermes_bin()
        if path is None:
            return False, not_found_message(where)
        v = hermes_version(path)
        note = "" if v == PINNED_VERSION else f"; tested with {PINNED_VERSION}"
        return True, f"hermes-agent {v or '?'} at {path}{note}"

    def describe(self) -> dict[str, Any]:
        path, _ = find_hermes_bin()
        return {"name": self.name, "version": (hermes_version(path) if path else None) or "not installed"}

    def aliases_for(self, call: ToolCall) -> tuple[str, ...]:
        return aliases_for_call(call)

    # ----------------------------------------------------------------- one attempt
    def run_attempt(self, ctx: AttemptContext) -> Attempt:
        log = get_logger().bind(lane=ctx.lane.name, prompt=ctx.prompt.id, attempt=ctx.n, agent=self.name)
        started = time.time()
        attempt = Attempt(lane=ctx.lane.name, prompt_id=ctx.prompt.id, n=ctx.n, agent=self.name,
                          started_at=_iso(started))

        def done(error: str | None = None) -> Attempt:
            if error:
                attempt.error = scrub(error)
                log.warning("attempt.error", error=attempt.error)
            end = time.time()
            attempt.finished_at = _iso(end)
            attempt.wall_s = round(end - started, 4)
            return attempt

        problems = option_problems(ctx.lane)
        if problems:
            return done("; ".join(problems))
        bin_path, where = find_hermes_bin(ctx.lane)
        if bin_path is None:
            return done(not_found_message(where))
        if not ctx.lane.base_url or not ctx.lane.model:
            return done(f"lane {ctx.lane.name!r}: hermes needs a resolved base_url and model "
                        f"(got base_url={ctx.lane.base_url!r}, model={ctx.lane.model!r})")
        opts = ctx.lane.agent_options
        context_length = int(opts.get("context_length") or ctx.lane.context_length or HERMES_MIN_CONTEXT)
        if context_length < HERMES_MIN_CONTEXT:
            return done(
                f"lane {ctx.lane.name!r}: context_length {context_length} is below the {HERMES_MIN_CONTEXT} "
                "Hermes requires; serve the model with a larger context, or set "
                f"agent_options.context_length = {HERMES_MIN_CONTEXT} if the server really holds it")

        from hbench.sandbox import safe_component

        base = Path(ctx.work_dir) if ctx.work_dir else Path(tempfile.gettempdir()) / "hbench-hermes" / safe_component(ctx.lane.name)
        # absolute: Hermes runs in the scratch dir, where a relative HERMES_HOME would miss
        adir = (base / "hermes" / safe_component(ctx.prompt.id) / str(ctx.n)).absolute()
        if adir.exists():
            shutil.rmtree(adir)
        home, hermes_home = adir / "home", adir / "hermes_home"
        home.mkdir(parents=True)
        hermes_home.mkdir()
        max_tokens = int(opts.get("max_tokens") or ctx.max_tokens)
        extra = opts.get("hermes_config") or {}
        scratch = Path(ctx.scratch).absolute()
        toolsets = str(opts.get("toolsets") or TOOLSETS)
        from hbench.plugins.mcp.hermes_config import mcp_ready, mcp_servers

        servers = mcp_servers(ctx, scratch, hermes_home) if mcp_ready(bin_path)[0] else {}
        if servers:  # the MCP servers builtin-mcp uses, started by Hermes itself
            # Hermes waits only mcp_discovery_timeout (1.5 s) for its servers before the first
            # model call; the join returns as soon as discovery is done
            extra = _merge({"mcp_servers": servers, "mcp_discovery_timeout": MCP_DISCOVERY_TIMEOUT_S}, extra)
            toolsets = ",".join([toolsets, *servers])
        (hermes_home / "config.yaml").write_text(render_config(build_config(
            base_url=ctx.lane.base_url, model=ctx.lane.model, context_length=context_length,
            max_tokens=max_tokens, max_turns=ctx.max_turns, with_key=bool(ctx.api_key), extra=extra)))
        env = {k: os.environ[k] for k in ENV_ALLOW if k in os.environ}
        env.update({k: v for k, v in os.environ.items() if k.startswith("LC_")})
        tmp = adir / "tmp"  # Hermes' terminal writes its env snapshots to TMPDIR
        tmp.mkdir()
        env.update({"HOME": str(home), "HERMES_HOME": str(hermes_home), "TERMINAL_CWD": str(scratch),
                    "TMPDIR": str(tmp), "PYTHONUNBUFFERED": "1"})
        env.setdefault("PATH", os.defpath)
        env.update({str(k): str(v) for k, v in (opts.get("env") or {}).items()})
        if ctx.api_key:
            register_secret(ctx.api_key)  # scrubbed from the transcript, tool output and logs
            env[KEY_ENV] = ctx.api_key
        usage_path = adir / "usage.json"
        # --oneshot=TEXT, not -z TEXT: a prompt starting with "-" must not parse as an option
        cmd = [str(bin_path), f"--oneshot={ctx.prompt.prompt}", "-t", toolsets, "--usage-file", str(usage_path)]
        if servers:  # -z must wait for the MCP servers (hbench.plugins.mcp.hermes_oneshot)
            from hbench.plugins.mcp.hermes_config import oneshot_argv

            cmd = oneshot_argv(bin_path, cmd[1:])

        log.debug("hermes.start", bin=str(bin_path), cwd=str(scratch))
        timed_out = cancelled = False
        with open(adir / "stdout.txt", "wb") as out, open(adir / "stderr.txt", "wb") as err:
            try:
                proc = subprocess.Popen(cmd, cwd=scratch, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=err, start_new_session=True)
            except OSError as exc:
                return done(f"hermes: cannot start {bin_path}: {exc}")
            deadline = time.monotonic() + ctx.timeout_s
            while proc.poll() is None:
                if ctx.cancel.is_set():
                    cancelled = True
                    break
                if time.monotonic() >= deadline:
                    timed_out = True
                    break
                try:
                    proc.wait(timeout=0.05)
                except subprocess.TimeoutExpired:
                    pass
            leftover = _end_attempt(proc, hermes_home)  # also what the agent left running
            if leftover and not (timed_out or cancelled):
                log.info("hermes.leftover_processes", count=leftover)
        rc = proc.returncode

        usage: dict[str, Any] | None = None
        try:
            loaded = json.loads(usage_path.read_text())
            usage = loaded if isinstance(loaded, dict) else None
        except (OSError, ValueError):
            usage = None
        session_id = (usage or {}).get("session_id")

        sessions, export_error = self._export(bin_path, env, session_id, started, adir)
        if sessions:
            fill_from_sessions(attempt, sessions)
        if usage:
            attempt.prompt_tokens = int(usage.get("input_tokens") or 0)
            attempt.completion_tokens = int(usage.get("output_tokens") or 0)
        if not opts.get("keep_home"):
            for d in (home, hermes_home, tmp):
                shutil.rmtree(d, ignore_errors=True)

        model_calls = int((usage or {}).get("api_calls") or len(attempt.turns))
        if timed_out:
            attempt.runaway = "timeout"
            log.warning("attempt.runaway", reason="timeout", timeout_s=ctx.timeout_s)
            return done()
        if cancelled:
            return done("cancelled")
        if usage is None:
            return done(f"hermes wrote no usage file (exit {rc}): "
                        f"{_tail(adir / 'stderr.txt') or _tail(adir / 'stdout.txt') or 'no output'}")
        if usage.get("failed") or not usage.get("completed"):
            attempt.answer = ""  # Hermes prints its error where the answer would be
            why = usage.get("failure") or _tail(adir / "stdout.txt") or _tail(adir / "stderr.txt") or "no detail"
            return done(f"hermes run failed: {why}")
        if export_error and not sessions:
            return done(export_error)
        if model_calls > ctx.max_turns:
            attempt.runaway = "max_turns"
        if attempt.runaway:
            log.warning("attempt.runaway", reason=attempt.runaway, model_calls=model_calls, max_turns=ctx.max_turns)
        if not attempt.answer.strip():
            stdout = scrub((adir / "stdout.txt").read_text(errors="replace")).strip()
            if stdout:
                attempt.answer = stdout
            else:
                return done("hermes produced no final answer")
        log.debug("hermes.done", tool_calls=len(attempt.tool_calls), model_calls=model_calls)
        return done()

    def _export(self, bin_path: Path, env: dict[str, str], session_id: str | None, started: float,
                adir: Path) -> tuple[list[dict[str, Any]], str | None]:
        """The attempt's session(s) from ``hermes sessions export``, and an error or None.

        With a session id (the usual case) that session is exported. Without one (killed
        on timeout: no usage file) every session of this attempt's private HERMES_HOME is
        exported and placed by :func:`bucket_sessions` against the attempt's start."""
        cmd = [str(bin_path), "sessions", "export", "-"]
        if session_id:
            cmd += ["--session-id", str(session_id)]
        try:
            proc = subprocess.run(cmd, env=env, cwd=adir, capture_output=True, timeout=EXPORT_TIMEOUT_S,
                                  stdin=subprocess.DEVNULL, start_new_session=True)
        except subprocess.TimeoutExpired:
            return [], f"hermes sessions export timed out after {EXPORT_TIMEOUT_S:.0f} s"
        except OSError as exc:
            return [], f"hermes sessions export failed: {exc}"
        text = proc.stdout.decode("utf-8", errors="replace")
        (adir / "session.jsonl").write_text(scrub(text))
        sessions = parse_export(text)
        if proc.returncode != 0 and not sessions:
            return [], f"hermes sessions export exited {proc.returncode}: {scrub(proc.stderr.decode(errors='replace'))[-300:]}"
        if session_id:
            picked = [s for s in sessions if s.get("id") == session_id]
            return (picked or sessions), None
        return bucket_sessions([("attempt", started)], sessions)["attempt"], None


def _attempt_processes(leader: int | None, hermes_home: Path) -> list[Any]:
    """Every live process of one attempt: the leader's tree, plus every process whose
    environment holds this attempt's ``HERMES_HOME``. Hermes' ``terminal`` tool starts
    each command in a session of its own (so a process-group kill misses it) and
    background ``process`` jobs outlive their parent; both keep ``HERMES_HOME``."""
    import psutil

    found: dict[int, Any] = {}
    if leader is not None:
        try:
            lp = psutil.Process(leader)
            found[lp.pid] = lp
            for c in lp.children(recursive=True):
                found[c.pid] = c
        except psutil.Error:
            pass
    marker = str(hermes_home)
    me = os.getpid()
    for p in psutil.process_iter():
        if p.pid in found or p.pid == me:
            continue
        try:
            if p.environ().get("HERMES_HOME") == marker:
                found[p.pid] = p
        except psutil.Error:  # another user's process, or gone
            continue
    return list(found.values())


def _end_attempt(proc: subprocess.Popen[bytes], hermes_home: Path) -> int:
    """Stop what is left of an attempt: SIGTERM to the leader's process group and to
    every process of the attempt, SIGKILL to what survives a grace. Returns how many
    processes it had to end (0 after a clean exit with nothing left behind)."""
    import psutil

    leader_alive = proc.poll() is None
    procs = _attempt_processes(proc.pid if leader_alive else None, hermes_home)
    if leader_alive:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    for p in procs:
        try:
            p.terminate()
        except psutil.Error:
            pass
    _gone, alive = psutil.wait_procs(procs, timeout=KILL_GRACE_S) if procs else ([], [])
    for p in alive:
        try:
            p.kill()
        except psutil.Error:
            pass
    if alive:
        psutil.wait_procs(alive, timeout=KILL_GRACE_S)
    try:
        proc.wait(timeout=KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return len(procs)


AGENT = HermesAgent()
