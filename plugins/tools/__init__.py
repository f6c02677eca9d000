"""Built-in tools (one module per tool). Registered by the hookimpl below.

Names are fixed (suites' ``expect_tool_any`` tokens match them): ``list_dir``,
``read_file``, ``glob``, ``grep``, ``calculate``. Every path goes through
:class:`hbench.sandbox.Sandbox`. ``decoys.jsonl`` is the decoy catalogue: each line a
:class:`hbench.suite_tools.DataTool` registered with ``decoy = True`` (a prompt's
``decoys: N`` offers N of them; nothing offers them by default).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from hbench import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from hbench.hookspecs import RegisterTool
    from hbench.suite_tools import DataTool


@hookimpl
def hbench_register_tools(register: RegisterTool) -> None:
    from hbench.plugins.tools.calculate import Calculate
    from hbench.plugins.tools.glob import Glob
    from hbench.plugins.tools.grep import Grep
    from hbench.plugins.tools.list_dir import ListDir
    from hbench.plugins.tools.read_file import ReadFile

    for cls in (ListDir, ReadFile, Glob, Grep, Calculate):
        register(cls)
    for tool in decoy_tools():  # made from data (a catalogue line): registered as themselves
        register(tool)


#: the decoy catalogue: plausible tools that answer nothing in any bundled suite
DECOYS = Path(__file__).with_name("decoys.jsonl")


def decoy_tools(path: Path = DECOYS) -> list[DataTool]:
    """The catalogue's tools (``decoy = True``: offered only by a prompt's ``decoys: N``,
    never by default). None when the file is absent."""
    if not path.is_file():
        return []
    from hbench.suite_tools import DataTool, load_catalogue

    return [DataTool(spec) for spec in load_catalogue(path)]
