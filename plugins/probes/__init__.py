"""Built-in probes (one module per probe). Registered by the hookimpl below."""

from __future__ import annotations

from hbench import hookimpl
