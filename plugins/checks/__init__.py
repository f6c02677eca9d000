"""Built-in checks (one module per check kind). Registered by the hookimpl below.

``substring``, ``json_keys``, ``regex``, ``honesty`` (a gate) and ``number``; DESIGN.md,
section Checks, gives their semantics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hbench import hookimpl

from .honesty import Honesty
from .json_keys import JsonKeys
from .number import Number
from .regex import Regex
from .substring import Substring

if TYPE_CHECKING:  # pragma: no cover
    from hbench.hookspecs import RegisterCheck


CHECK_KINDS = (Substring, JsonKeys, Regex, Honesty, Number)


@hookimpl
def hbench_register_checks(register: RegisterCheck) -> None:
    for cls in CHECK_KINDS:
        register(cls)
