"""``builtin``: hbench's own OpenAI tool-calling loop.

One attempt = one conversation: the suite's system prompt, the prompt, then turns of
``model -> tool calls -> tool results`` until the model answers without calling a tool.
Every tool runs inside the attempt's scratch copy (:class:`hbench.sandbox.Sandbox`); a
refusal or failure goes back to the model as the tool's result, never as an exception.

Limits, each a **runaway** with its reason:

* ``timeout`` - the attempt's deadline (``timeout_s``) passed; the client closes the
  in-flight request, so the server stops decoding it;
* ``max_turns`` - the model still calls tools after ``max_turns`` requests;
* ``loop`` - the same tool called with the same arguments ``LOOP_REPEATS`` times, the
  earlier ones successful (a retry after a tool error is recovery, never a loop; a tool
  that keeps failing is bounded by ``max_turns`` and the timeout).

Malformed tool-call arguments are a **format error**: the model is told (as the tool
result) and the broken call is replayed to the server as ``{}``, never verbatim (a
replayed broken call can make every later turn fail on llama.cpp). A transport or
server error that survives the client's bounded retries ends the attempt with
``error`` set; the runner records it and moves on.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, OrderedDict
from typing import Any, ClassVar

from hbench import __version__
from hbench.agents import Agent, AttemptContext
from hbench.logging import get_logger, scrub
from hbench.models import Attempt, ToolCall, Turn
from hbench.sandbox import Sandbox
from hbench.tools import ToolError

#: the same call (name + arguments) this many times in one attempt, after
#: ``LOOP_REPEATS - 1`` successful runs of it, is a loop (failed runs do not count)
LOOP_REPEATS = 3
#: characters of one tool result the model sees
MAX_TOOL_RESULT = 40_000  # above read_file's 32 KiB cap, so its own truncation note survives
#: lanes whose ChatClient (and kept-alive connections) stay open between attempts; more
#: than --parallel-lanes will ever run at once (the least recently used one is closed)
CLIENT_CACHE = 64


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _cap(text: str, limit: int = MAX_TOOL_RESULT) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[cut: {len(text) - limit} more characters not shown]"


class BuiltinAgent(Agent):
    name: ClassVar[str] = "builtin"
    version: ClassVar[str] = __version__
    #: suite_tools: offers each prompt its own tool set (suite tools, decoys) and sends
    #: its follow-up ``turns``
    capabilities: ClassVar[frozenset[str]] = frozenset({"suite_tools"})
    tool_aliases: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self, loop_repeats: int = LOOP_REPEATS):
        self.loop_repeats = loop_repeats
        self._clients: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._clients_lock = threading.Lock()

    def _client(self, lane: Any, api_key: str | None, timeout_s: float) -> Any:
        """The lane's ChatClient, shared by its attempts (it is thread-safe). A new one per
        attempt cost ~25 ms of CPU (httpx loads the CA bundle into a new SSL context) and
        a new connection; the least recently used of more than :data:`CLIENT_CACHE` lanes
        is closed (lanes run one after another, or a few side by side: --parallel-lanes)."""
        from hbench.client import ChatClient

        key = (lane.base_url, api_key, float(timeout_s), lane.name)
        with self._clients_lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = ChatClient(lane.base_url, api_key, timeout_s=timeout_s,
                                                         lane=lane.name)
                while len(self._clients) > CLIENT_CACHE:
                    self._clients.popitem(last=False)[1].close()
            self._clients.move_to_end(key)
            return client

    def run_attempt(self, ctx: AttemptContext) -> Attempt:
        from hbench.client import AttemptCancelled, AttemptTimeout, ClientError

        log = get_logger()
        lane = ctx.lane
        attempt = Attempt(lane=lane.name, prompt_id=ctx.prompt.id, n=ctx.n, agent=self.name, started_at=_now())
        t0 = time.monotonic()
        deadline = t0 + ctx.timeout_s
        sandbox = Sandbox(ctx.scratch)
        tools = dict(ctx.tools)
        schemas = [t.schema() for t in tools.values()]
        messages: list[dict[str, Any]] = []
        if ctx.suite.system_prompt:
            messages.append({"role": "system", "content": ctx.suite.system_prompt})
        messages.append({"role": "user", "content": ctx.prompt.prompt})
        transcript: list[dict[str, Any]] = [dict(m) for m in messages]
        extra: dict[str, Any] = {}
        if lane.top_p is not None:
            extra["top_p"] = lane.top_p
        if lane.seed is not None:
            extra["seed"] = lane.seed
        seen: Counter[tuple[str, str]] = Counter()
        client = self._client(lane, ctx.api_key, ctx.timeout_s)
        follow_ups = [t.say for t in getattr(ctx.prompt, "turns", ())]
        requests = 0  # model requests since the last user message (max_turns counts per message)
        try:
            while True:
                if requests >= ctx.max_turns:
                    attempt.runaway = "max_turns"
                    log.info("attempt.runaway", lane=lane.name, prompt=ctx.prompt.id, n=ctx.n,
                             reason="max_turns", max_turns=ctx.max_turns)
                    break
                requests += 1
                if ctx.cancel.is_set():
                    attempt.error = "cancelled"
                    break
                resp = client.chat(
                    messages, model=lane.model, tools=schemas or None, temperature=ctx.temperature,
                    max_tokens=ctx.max_tokens, deadline=deadline, cancel=ctx.cancel, extra_body=extra or None,
                )
                attempt.turns.append(Turn(
                    wall_s=resp.wall_s, ttft_ms=resp.ttft_ms, prompt_tokens=resp.prompt_tokens,
                    completion_tokens=resp.completion_tokens, finish_reason=resp.finish_reason,
                    server_timings=resp.server_timings,
                ))
                for w in getattr(resp, "warnings", None) or []:
                    log.info("attempt.server_warning", lane=lane.name, prompt=ctx.prompt.id, n=ctx.n, warning=w)
                    if w not in attempt.warnings:
                        attempt.warnings.append(scrub(w))
                attempt.prompt_tokens += resp.prompt_tokens or 0
                attempt.completion_tokens += resp.completion_tokens or 0
                content = resp.content or ""
                attempt.answer = content
                if not resp.tool_calls:
                    messages.append({"role": "assistant", "content": content})
                    entry: dict[str, Any] = {"role": "assistant", "content": content}
                    if resp.reasoning:
                        entry["reasoning"] = resp.reasoning
                    transcript.append(entry)
                    if follow_ups or attempt.answers:
                        attempt.answers.append(content)
                    if not follow_ups:
                        break
                    # suite format 2 `turns`: the next user message, after this final answer
                    say = follow_ups.pop(0)
                    messages.append({"role": "user", "content": say})
                    transcript.append({"role": "user", "content": say})
                    seen.clear()
                    requests = 0
                    if time.monotonic() > deadline:
                        raise AttemptTimeout(f"attempt passed its {ctx.timeout_s:g} s deadline")
                    continue
                runaway = self._tool_round(resp, content, tools, sandbox, seen, attempt, messages, transcript)
                if runaway:
                    attempt.runaway = "loop"
                    log.info("attempt.runaway", lane=lane.name, prompt=ctx.prompt.id, n=ctx.n,
                             reason="loop", call=runaway)
                    break
                if time.monotonic() > deadline:
                    raise AttemptTimeout(f"attempt passed its {ctx.timeout_s:g} s deadline")
        except AttemptCancelled:
            attempt.error = "cancelled"
        except AttemptTimeout:
            attempt.runaway = "timeout"
            log.info("attempt.runaway", lane=lane.name, prompt=ctx.prompt.id, n=ctx.n,
                     reason="timeout", timeout_s=ctx.timeout_s)
        except ClientError as exc:  # transport after bounded retries, unusable or rejected reply
            attempt.error = "cancelled" if ctx.cancel.is_set() else scrub(f"{type(exc).__name__}: {exc}")
        attempt.transcript = transcript
        attempt.wall_s = time.monotonic() - t0
        attempt.finished_at = _now()
        return attempt

    def _tool_round(self, resp: Any, content: str, tools: dict[str, Any], sandbox: Sandbox,
                    seen: Counter[tuple[str, str]], attempt: Attempt,
                    messages: list[dict[str, Any]], transcript: list[dict[str, Any]]) -> str | None:
        """Run one turn's tool calls; append the assistant and tool messages. Returns the
        looping call's description when the loop detector fired (the call is not run)."""
        replay = []
        for i, tc in enumerate(resp.tool_calls):
            call_id = tc.id or f"call_{len(attempt.tool_calls) + i}"
            ok_args = tc.format_error is None and isinstance(tc.arguments, dict)
            args_wire = json.dumps(tc.arguments, ensure_ascii=False) if ok_args else "{}"  # never the broken text
            replay.append({"id": call_id, "type": "function", "function": {"name": tc.name, "arguments": args_wire}})
        assistant = {"role": "assistant", "content": content, "tool_calls": replay}
        messages.append(assistant)
        t_entry = dict(assistant)
        if resp.reasoning:
            t_entry["reasoning"] = resp.reasoning
        transcript.append(t_entry)
        looping: str | None = None
        for tc, rp in zip(resp.tool_calls, replay):
            call_id = rp["id"]
            args = tc.arguments
            record = ToolCall(name=tc.name, arguments=args if args is not None else tc.raw_arguments, id=call_id)
            if tc.format_error is not None or not isinstance(args, dict):
                why = tc.format_error or f"arguments must be a JSON object, got {type(args).__name__}"
                record.ok, record.format_error = False, True
                record.error = f"the arguments were not valid JSON ({why}); call {tc.name} again with one JSON object"
                attempt.format_errors += 1
            elif tc.name not in tools:
                record.ok = False
                record.error = f"unknown tool {tc.name!r}; the tools are: {', '.join(sorted(tools))}"
                attempt.unknown_tools += 1
            else:
                # `seen` counts the identical calls that succeeded: a retry after a tool error
                # is recovery, not a loop (a suite tool with fail_first: 2 needs a third call)
                key = (tc.name, json.dumps(args, sort_keys=True, default=str))
                if seen[key] + 1 >= self.loop_repeats:
                    looping = f"{tc.name}({key[1][:200]}) x{seen[key] + 1}"
                    record.ok = False
                    record.error = (f"not run: the same call already succeeded {seen[key]} "
                                    f"time{'s' if seen[key] != 1 else ''} (loop)")
                    attempt.tool_calls.append(record)
                    break
                try:
                    record.result = _cap(tools[tc.name].call(args, sandbox))
                    seen[key] += 1
                except ToolError as exc:
                    record.ok, record.error = False, str(exc)
                except Exception as exc:  # noqa: BLE001 - a tool bug is a tool error, never a crash
                    get_logger().warning("tool.crashed", tool=tc.name, error=f"{type(exc).__name__}: {exc}")
                    record.ok, record.error = False, f"the tool failed internally ({type(exc).__name__})"
            seen_text = record.result if record.ok else f"error: {record.error}"
            record.result = seen_text
            attempt.tool_calls.append(record)
            msg = {"role": "tool", "tool_call_id": call_id, "content": seen_text}
            messages.append(msg)
            transcript.append({**msg, "name": tc.name})
        return looping
