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

Finding Hermes and writing an attempt's home, config, environment and command line are in
:mod:`hbench.plugins.agents.hermes_setup`; reading the session export back into the
Attempt is :mod:`hbench.plugins.agents.hermes_sessions`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

from hbench.agents import Agent, AttemptContext
from hbench.logging import get_logger, scrub
from hbench.models import Attempt, ToolCall
from hbench.plugins.agents.hermes_setup import (
    HERMES_MIN_CONTEXT,
    PINNED_VERSION,
    find_hermes_bin,
    hermes_version,
    not_found_message,
    option_problems,
    prepare_attempt,
)
from hbench.plugins.agents.hermes_sessions import (
    TOOL_ALIASES,
    aliases_for_call,
    bucket_sessions,
    fill_from_sessions,
    parse_export,
)
from hbench.plugins.mcp.hermes_config import mcp_ready

EXPORT_TIMEOUT_S = 60.0
KILL_GRACE_S = 2.0


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

        setup = prepare_attempt(ctx, bin_path, context_length)
        adir, home, hermes_home, tmp = setup.dir, setup.home, setup.hermes_home, setup.tmp
        scratch, env, cmd, usage_path = setup.scratch, setup.env, setup.cmd, setup.usage_path

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
