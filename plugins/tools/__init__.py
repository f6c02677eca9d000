"""Built-in tools (one module per tool). Registered by the hookimpl below.

Names are fixed (suites' ``expect_tool_any`` tokens match them): ``list_dir``,
``read_file``, ``glob``, ``grep``, ``calculate``. Every path goes through
:class:`hbench.sandbox.Sandbox`.
"""

from __future__ import annotations

from hbench import hookimpl


@hookimpl
def hbench_register_tools(register):  # noqa: ANN001, ANN201
    from hbench.plugins.tools.calculate import Calculate
    from hbench.plugins.tools.glob import Glob
    from hbench.plugins.tools.grep import Grep
    from hbench.plugins.tools.list_dir import ListDir
    from hbench.plugins.tools.read_file import ReadFile

    for cls in (ListDir, ReadFile, Glob, Grep, Calculate):
        register(cls())
