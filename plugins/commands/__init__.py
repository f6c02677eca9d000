"""Built-in commands, added to the CLI by ``hbench_register_commands`` like any plugin's:
``doctor``, ``throughput``, ``probe``, ``report``, ``validate`` and the listings (``lanes``,
``checks``, ``lane-kinds``, ``reporters``, ``suites``, ``agents``). One module per command.

Core's CLI (``hbench.cli``) keeps the global options, ``run`` and ``plugins``, and hands
every command what it shares: the registries, hbench.toml, the lanes, ``err``. Each
command module imports only typer at its top; the module that does the work is imported
when the command runs, so ``hbench --help`` and ``hbench plugins`` stay fast. The command
modules (and core/cli.py) leave out ``from __future__ import annotations``: typer reads every
option's annotation at start-up, and each one written as a string costs a compile (about 190
of them for ``hbench --help``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hbench import hookimpl

if TYPE_CHECKING:
    import typer


@hookimpl
def hbench_register_commands(app: typer.Typer) -> None:
    from hbench.plugins.commands import doctor, listings, probe, report, throughput, validate

    for module in (listings, probe, doctor, throughput, report, validate):
        module.register(app)
