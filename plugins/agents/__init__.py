"""Built-in agents (one module per agent). Registered by the hookimpl below."""

from __future__ import annotations

from hbench import hookimpl
