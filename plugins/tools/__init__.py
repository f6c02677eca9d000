"""Built-in tools (one module per tool). Registered by the hookimpl below."""

from __future__ import annotations

from hbench import hookimpl
