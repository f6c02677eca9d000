"""The ``hbench mcp-serve`` command (registered through ``hbench_register_commands``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

INSTALL_HINT = "pip install 'hermes-bench[mcp]'"


def register(app: Any) -> None:
    import typer

    @app.command("mcp-serve")
    def mcp_serve(
        root: Path = typer.Option(..., "--root", help="The folder the tools are confined to."),
        suite: Optional[str] = typer.Option(None, "--suite", help="Also serve this suite's own tools (name or path)."),
        tools: Optional[str] = typer.Option(
            None, "--tools", help="Serve only these tools (comma-separated names); default: the built-ins and the suite's."),
        attempt_roots: bool = typer.Option(
            False, "--attempt-roots", hidden=True,
            help="Pool mode: each call names its attempt's folder (inside --root) in _meta."),
    ) -> None:
        """Serve the sandboxed tools (and a suite's tools) over MCP on stdin/stdout.

        Every path stays inside --root, as with the in-process tools; a refusal is an MCP
        error result. Start it with an explicit environment: it needs no API key."""
        import importlib.util

        from hbench.errors import HBenchError

        if importlib.util.find_spec("mcp") is None:
            typer.echo(f"hbench mcp-serve: the 'mcp' package is not installed; {INSTALL_HINT}", err=True)
            raise typer.Exit(2)
        if not root.is_dir():
            typer.echo(f"hbench mcp-serve: --root {root}: not a folder; pass an existing folder", err=True)
            raise typer.Exit(2)
        from hbench.plugins.mcp.server import serve

        try:
            serve(root, suite=suite, attempt_roots=attempt_roots,
                  tools=[t.strip() for t in tools.split(",") if t.strip()] if tools else None)
        except HBenchError as exc:
            typer.echo(f"hbench mcp-serve: {exc}", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        except (BrokenPipeError, ConnectionError):
            raise typer.Exit(0) from None  # the client went away: nothing left to serve
        except BaseExceptionGroup as group:
            _gone, rest = group.split((BrokenPipeError, ConnectionError))
            if rest is None:
                raise typer.Exit(0) from None
            raise
