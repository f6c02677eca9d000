"""hermes-bench: which local model + serving stack should be your agent brain?

Plugin authors need only this module::

    from hbench import hookimpl

    @hookimpl
    def hbench_register_lanes(register):
        register(LaneSpec(name="my-lane", kind="llamacpp", base_url="http://127.0.0.1:8080/v1"))
"""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

#: Marker for hook implementations: ``@hookimpl def hbench_register_checks(register): ...``
hookimpl = pluggy.HookimplMarker("hbench")

__all__ = ["__version__", "hookimpl"]
