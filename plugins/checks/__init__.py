"""Built-in checks (one module per check). Registered by the hookimpl below."""

from __future__ import annotations

from hbench import hookimpl
