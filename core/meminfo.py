"""``/proc/meminfo``: the one reader (memory floor and memory-returned checks in
:mod:`hbench.lifecycle`, the ``meminfo`` probe). Values are bytes; callers convert to the
unit their name says (``_gb``: 10^9 bytes, ``_gib``: 2^30 bytes)."""

from __future__ import annotations

from pathlib import Path

MEMINFO = Path("/proc/meminfo")


def parse_meminfo(text: str) -> dict[str, int]:
    """``/proc/meminfo`` text -> {field: bytes}. Lines that are not ``Key: N [kB]`` are
    ignored."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        if not sep:
            continue
        parts = rest.split()
        if not parts:
            continue
        try:
            value = int(parts[0])
        except ValueError:
            continue
        unit = parts[1].lower() if len(parts) > 1 else ""
        out[key.strip()] = value * 1024 if unit == "kb" else value
    return out


def read_meminfo(path: Path | None = None) -> dict[str, int] | None:
    """The fields of ``path`` (default /proc/meminfo) in bytes, or None when unreadable."""
    try:
        return parse_meminfo((path or MEMINFO).read_text())
    except (OSError, UnicodeDecodeError):
        return None


def mem_available_bytes(path: Path | None = None) -> int | None:
    """``MemAvailable`` in bytes, or None when unreadable or absent."""
    fields = read_meminfo(path)
    return None if fields is None else fields.get("MemAvailable")
