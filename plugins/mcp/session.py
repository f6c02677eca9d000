"""A synchronous MCP client connection, for agent drivers that run in worker threads.

Every connection of the process shares one daemon thread running an anyio event loop
(:func:`portal`). A :class:`McpConnection` is owned by one task on that loop, from start
to close (``mcp.Client`` and its transport are entered and left in that task, as anyio
requires); calls from any thread go through the portal. Start has a deadline: a server
that never answers ``initialize`` (or dies, or prints only garbage) raises
:class:`McpStartError` with the reason and leaves no process behind.
"""

from __future__ import annotations

import functools
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from hbench.logging import scrub

from hbench.plugins.mcp.transport import Stats

_portal_lock = threading.Lock()
_portal: Any = None


def portal() -> Any:
    """The process's MCP event loop (a daemon thread), started on first use."""
    global _portal
    with _portal_lock:
        if _portal is not None:
            return _portal
        import anyio
        from anyio.from_thread import BlockingPortal

        ready = threading.Event()
        box: dict[str, Any] = {}

        async def main() -> None:
            async with BlockingPortal() as p:
                box["portal"] = p
                ready.set()
                await p.sleep_until_stopped()

        def run() -> None:
            try:
                anyio.run(main)
            finally:
                ready.set()

        threading.Thread(target=run, name="hbench-mcp-loop", daemon=True).start()
        ready.wait()
        _portal = box["portal"]
        return _portal


#: lines of non-JSON-RPC output before the handshake after which a server is given up
GARBAGE_LIMIT = 200


class McpStartError(Exception):
    """A server did not come up; the message says why (one line, scrubbed)."""


class McpCallError(Exception):
    """A call failed below the tool (the server died, timed out or broke the protocol)."""


def content_text(result: Any) -> str:
    """The text a model sees for a ``CallToolResult``: text blocks as they are, other
    blocks described in one line, ``structured_content`` as JSON when there is no text."""
    parts: list[str] = []
    for block in getattr(result, "content", None) or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind in ("image", "audio"):
            parts.append(f"[{kind} {getattr(block, 'mime_type', '?')}, {len(getattr(block, 'data', '') or '')} base64 characters]")
        elif kind == "resource":
            res = block.resource
            text = getattr(res, "text", None)
            parts.append(text if text is not None else f"[binary resource {res.uri}]")
        elif kind == "resource_link":
            parts.append(f"[resource {getattr(block, 'uri', '?')}]")
        else:
            parts.append(f"[{kind or 'unknown'} content]")
    if not parts and getattr(result, "structured_content", None) is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts)


class McpConnection:
    """One MCP server process and the client session to it."""

    def __init__(self, name: str, argv: Sequence[str], *, env: Mapping[str, str], cwd: str | Path | None = None,
                 start_timeout_s: float = 15.0, call_timeout_s: float = 60.0, mode: str = "auto"):
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.cwd = str(cwd) if cwd is not None else None
        self.start_timeout_s = float(start_timeout_s)
        self.call_timeout_s = float(call_timeout_s)
        self.mode = mode
        self.stats = Stats()
        self.start_s: float | None = None
        self._client: Any = None
        self._ready = threading.Event()
        self._closing: Any = None
        self._future: Any = None
        self._error: BaseException | None = None
        self._stderr = tempfile.TemporaryFile()
        self._tools: list[Any] | None = None
        self.dead: str | None = None  # why calls can no longer succeed

    # ----------------------------------------------------------------- life
    async def _owner(self) -> None:
        import anyio
        from mcp import Client
        from mcp.types import Implementation

        from hbench import __version__
        from hbench.plugins.mcp.transport import stdio_transport

        self._closing = anyio.Event()
        try:
            transport = stdio_transport(self.argv, env=self.env, cwd=self.cwd, stderr=self._stderr, stats=self.stats)
            client = Client(transport, mode=self.mode, read_timeout_seconds=self.start_timeout_s, cache=None,
                            client_info=Implementation(name="hbench", version=__version__))
            async with client:
                self._client = client
                self._ready.set()
                await self._closing.wait()
        except Exception as exc:  # noqa: BLE001 - reported by start() / recorded as dead
            self._error = exc
        finally:
            self._client = None
            self._ready.set()

    def start(self) -> McpConnection:
        """Start the server and finish the handshake, or raise :class:`McpStartError`."""
        t0 = time.monotonic()
        self._future = portal().start_task_soon(self._owner)
        end = t0 + self.start_timeout_s
        ok = False
        while not ok and time.monotonic() < end and self.stats.garbage_lines < GARBAGE_LIMIT:
            ok = self._ready.wait(min(0.05, max(0.0, end - time.monotonic())))
        if ok and self._client is not None:
            self.start_s = time.monotonic() - t0
            return self
        self.close()
        raise McpStartError(self._start_reason(timed_out=not ok))

    def _start_reason(self, *, timed_out: bool) -> str:
        st = self.stats
        if timed_out and st.garbage_lines >= GARBAGE_LIMIT:
            why = "printed only lines that are not JSON-RPC on stdout before answering initialize"
        elif timed_out:
            why = f"never answered initialize within {self.start_timeout_s:g} s"
        elif st.exited_early or (st.returncode is not None and self._error is not None):
            why = "exited before answering initialize"
            if st.returncode is not None:
                why += f" (exit {st.returncode})"
        elif isinstance(self._error, OSError):
            why = f"cannot start {self.argv[0]!r}: {self._error.strerror or self._error}"
        else:
            why = f"the handshake failed: {_one_line(self._error)}"
        if st.garbage_lines:
            why += f"; it printed {st.garbage_lines} line(s) that are not JSON-RPC on stdout (first: {st.garbage_sample!r})"
        tail = self.stderr_tail()
        if tail:
            why += f"; stderr: {tail}"
        return scrub(f"mcp server {self.name!r} {why}")

    def stderr_tail(self, chars: int = 300) -> str:
        try:
            self._stderr.seek(0, 2)
            size = self._stderr.tell()
            self._stderr.seek(max(0, size - chars))
            text = self._stderr.read().decode("utf-8", errors="replace")
        except (OSError, ValueError):
            return ""
        return " ".join(text.split())[-chars:]

    def close(self, timeout_s: float = 10.0) -> None:
        """End the session and the server's whole process group (bounded)."""
        fut = self._future
        if fut is None:
            return
        p = portal()
        if self._closing is not None and not fut.done():
            try:
                p.call(self._closing.set)
            except Exception:  # noqa: BLE001 - loop gone
                pass
        try:
            fut.result(timeout=timeout_s)
        except Exception:  # noqa: BLE001 - timed out or cancelled: cancel the owner (its transport kills the group)
            fut.cancel()
            try:
                fut.result(timeout=timeout_s)
            except BaseException:  # noqa: BLE001
                pass
        self._future = None  # stderr stays readable (the reason); it closes with this object

    # ----------------------------------------------------------------- calls
    def _call(self, fn: Any, timeout_s: float) -> Any:
        if self._client is None:
            raise McpCallError(self.dead or f"mcp server {self.name!r} is not running")
        fut = portal().start_task_soon(fn)
        try:
            return fut.result(timeout=timeout_s + 1.0)
        except TimeoutError:
            fut.cancel()
            raise McpCallError(f"mcp server {self.name!r} did not answer within {timeout_s:g} s") from None

    def list_tools(self) -> list[Any]:
        """The server's tools (``mcp.types.Tool``: ``name``, ``description``, ``input_schema``)."""
        if self._tools is None:
            tools: list[Any] = []
            cursor = None
            for _ in range(100):
                page = self._call(functools.partial(self._client.list_tools, cursor=cursor), self.start_timeout_s)
                tools.extend(page.tools)
                cursor = page.next_cursor
                if not cursor:
                    break
            self._tools = tools
        return self._tools

    def call_tool(self, name: str, arguments: dict[str, Any], *, meta: dict[str, Any] | None = None,
                  timeout_s: float | None = None) -> tuple[bool, str]:
        """``(ok, text)``: the tool's content as text; ``ok`` is False for an ``isError``
        result. Raises :class:`McpCallError` when the server itself failed."""
        t = self.call_timeout_s if timeout_s is None else max(0.1, float(timeout_s))
        client = self._client
        if client is None or self.dead:
            raise McpCallError(self.dead or f"mcp server {self.name!r} is not running")
        fn = functools.partial(client.call_tool, name, arguments, t, meta=meta)
        try:
            result = self._call(fn, t)
        except McpCallError as exc:
            self.dead = self.dead or str(exc)
            raise
        except Exception as exc:  # noqa: BLE001 - protocol error, closed connection, read timeout
            if self.stats.exited_early:
                rc = self.stats.returncode
                self.dead = scrub(f"mcp server {self.name!r} exited" + (f" (exit {rc})" if rc is not None else "")
                                  + (f"; stderr: {self.stderr_tail()}" if self.stderr_tail() else ""))
                raise McpCallError(self.dead) from None
            if "timed out" in str(exc):
                self.dead = f"mcp server {self.name!r} did not answer within {t:g} s (tools/call {name!r})"
                raise McpCallError(self.dead) from None
            raise McpCallError(scrub(f"mcp server {self.name!r}: {_one_line(exc)}")) from None
        return not bool(getattr(result, "is_error", False)), content_text(result)


def _one_line(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _one_line(exc.exceptions[0])
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]
