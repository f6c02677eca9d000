"""A stdio transport for the MCP client that hbench controls end to end.

The SDK's ``stdio_client`` merges part of the caller's environment into the server's and,
when the server exits by itself, leaves the rest of its process group alone. This one:

* starts the server with exactly the environment it is given, in its own session and
  process group, with its working directory and stderr where hbench says;
* skips lines on stdout that are not JSON-RPC (counted in :class:`Stats`, so the attempt
  can say "the server printed N lines of garbage") instead of failing the session;
* on exit, closes stdin, waits a grace period, then SIGTERM and SIGKILL to the **whole
  process group**, and a last SIGKILL to the group even after a clean exit, so nothing
  the server started survives it.
"""

from __future__ import annotations

import os
import signal
import subprocess
from contextlib import asynccontextmanager
from typing import IO, Any, AsyncIterator, Sequence

import anyio
import attrs

#: one stdout line longer than this is garbage (and is dropped without being kept)
MAX_LINE = 16 * 1024 * 1024
#: after stdin closes, how long a server may take to exit before SIGTERM, then SIGKILL
EXIT_GRACE_S = 2.0  # as the SDK; a loaded box needs more than 1 s to shut Python down
KILL_GRACE_S = 1.0


@attrs.define
class Stats:
    """What one server process did that the attempt should know."""

    pid: int | None = None
    garbage_lines: int = 0
    garbage_sample: str = ""
    returncode: int | None = None
    exited_early: bool = False  # stdout closed before hbench closed the session


def _kill_group(pgid: int, sig: int) -> bool:
    """Signal the group; False when it is gone."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _group_alive(pgid: int) -> bool:
    return _kill_group(pgid, 0)


async def _wait_exit(proc: Any, timeout: float) -> bool:
    with anyio.move_on_after(timeout):
        while proc.returncode is None:
            await anyio.sleep(0.01)
    return proc.returncode is not None


async def stop_process_group(proc: Any) -> None:
    """Close stdin, wait, SIGTERM the group, wait, SIGKILL the group (always, at the end)."""
    pgid = proc.pid
    try:
        await proc.stdin.aclose()
    except Exception:  # noqa: BLE001 - already closed or broken
        pass
    if not await _wait_exit(proc, EXIT_GRACE_S):
        _kill_group(pgid, signal.SIGTERM)
        await _wait_exit(proc, KILL_GRACE_S)
    # whatever is left of the group (children of a server that exited, a survivor of SIGTERM)
    if _kill_group(pgid, signal.SIGKILL):
        with anyio.move_on_after(KILL_GRACE_S):
            while proc.returncode is None:
                await anyio.sleep(0.01)
    with anyio.move_on_after(KILL_GRACE_S):
        while _group_alive(pgid):  # members linger until reaped by their parent (or init)
            await anyio.sleep(0.01)


@asynccontextmanager
async def stdio_transport(argv: Sequence[str], *, env: dict[str, str], cwd: str | None,
                          stderr: IO[bytes] | int | None = subprocess.DEVNULL,
                          stats: Stats | None = None) -> AsyncIterator[tuple[Any, Any]]:
    """Start ``argv`` and yield the ``(read_stream, write_stream)`` pair ``mcp.Client`` takes."""
    import mcp_types as types
    from mcp.shared.message import SessionMessage

    stats = stats if stats is not None else Stats()
    proc = await anyio.open_process(list(argv), env=env, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=stderr, start_new_session=True)
    stats.pid = proc.pid
    read_w, read_r = anyio.create_memory_object_stream[Any](0)
    write_w, write_r = anyio.create_memory_object_stream[Any](0)
    closing = False

    def garbage(line: bytes) -> None:
        stats.garbage_lines += 1
        if not stats.garbage_sample:
            stats.garbage_sample = line[:120].decode("utf-8", errors="replace")

    async def reader() -> None:
        buf = b""
        async with read_w:
            try:
                async for chunk in proc.stdout:
                    buf += chunk
                    if b"\n" not in chunk:
                        if len(buf) > MAX_LINE:
                            garbage(buf)
                            buf = b""
                        continue
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        if not line.strip():
                            continue
                        try:
                            msg = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                        except ValueError:
                            garbage(line)
                            continue
                        await read_w.send(SessionMessage(msg))
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream, OSError):
                pass
            if not closing:
                stats.exited_early = True

    async def writer() -> None:
        async with write_r:
            try:
                async for m in write_r:
                    data = m.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
                    await proc.stdin.send(data.encode("utf-8"))
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                await read_w.aclose()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            tg.start_soon(writer)
            try:
                yield read_r, write_w
            finally:
                closing = True
                with anyio.CancelScope(shield=True):
                    await write_w.aclose()
                    await stop_process_group(proc)
                    stats.returncode = proc.returncode
                tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            if proc.returncode is None:  # the task group failed before the finally above ran
                await stop_process_group(proc)
            for s in (read_r, write_w, proc.stdout):
                try:
                    await s.aclose()
                except Exception:  # noqa: BLE001
                    pass
