"""Readable help for the ``hbench`` command tree: one place names every option's value.

Typer shows an option's value by its Python type (``--runs <int>``, ``--out <str>``).
:func:`readable_metavars` walks the built command tree (plugin commands included) and
names each value by what it is (``--runs N``, ``--out DIR``, ``--timeout SECONDS``),
unless the option already sets its own ``metavar``. ``tests/test_cli_conventions.py``
fails on any ``<type>`` metavar or an option without help text.
"""

from __future__ import annotations

from typing import Any

#: option name (without dashes) -> what its value is called in help
BY_NAME: dict[str, str] = {
    "lanes": "LANE,...",
    "lane": "LANE",
    "suite": "SUITE",
    "runs": "N",
    "count": "N",
    "max-turns": "N",
    "concurrency": "N",
    "parallel-lanes": "N",
    "max-consecutive-errors": "N",
    "keep": "N",
    "port": "PORT",
    "pid": "PID",
    "host": "HOST",
    "timeout": "SECONDS",
    "wait": "SECONDS",
    "ready-timeout": "SECONDS",
    "slo-s": "SECONDS",
    "hz": "HZ",
    "sample-hz": "HZ",
    "out": "DIR",
    "root": "DIR",
    "config": "FILE",
    "lane-url": "URL",
    "metrics-url": "URL",
    "model": "MODEL",
    "kind": "KIND",
    "agent": "AGENT",
    "api-key-env": "VAR",
    "db": "URL|PATH",
    "report": "REPORTER,...",
    "prefer": "memory|speed|latency",
    "tags": "TAG,...",
    "categories": "CATEGORY,...",
    "tools": "TOOL,...",
    "fail-under": "GATE",
    "shard": "I/N",
    "ray": "auto|ADDRESS",
    "depth": "TOKENS,...",
    "concurrency-sweep": "N,...",
    "since": "DATE",
    "log-format": "auto|console|json",
    "log-level": "LEVEL",
}

#: click/typer type name -> fallback value name
BY_TYPE: dict[str, str] = {"integer": "N", "float": "NUMBER", "path": "PATH", "boolean": "BOOL"}


def _commands(cmd: Any) -> list[Any]:
    out = [cmd]
    for sub in (getattr(cmd, "commands", None) or {}).values():
        out.extend(_commands(sub))
    return out


def metavar_for(param: Any) -> str:
    """The value name for one option: by its name, else by its type, else its name."""
    longest = max(param.opts, key=len).lstrip("-")
    if longest in BY_NAME:
        return BY_NAME[longest]
    type_name = getattr(param.type, "name", "") or ""
    return BY_TYPE.get(type_name, longest.upper().replace("-", "_"))


def readable_metavars(cmd: Any) -> Any:
    """Give every option of ``cmd`` and its subcommands that takes a value and sets no
    ``metavar`` of its own a readable one; returns ``cmd``."""
    for c in _commands(cmd):
        for p in c.params:
            if getattr(p, "param_type_name", "") != "option" or getattr(p, "is_flag", False) or p.metavar:
                continue
            if getattr(p, "count", False) or getattr(p.type, "name", "") == "choice":
                continue  # a choice shows its choices
            p.metavar = metavar_for(p)
    return cmd
