"""Built-in reporters (one module per reporter). Registered by the hookimpl below."""

from __future__ import annotations

from hbench import hookimpl
