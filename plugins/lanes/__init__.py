"""Built-in lanes (one module per lane). Registered by the hookimpl below."""

from __future__ import annotations

from hbench import hookimpl
