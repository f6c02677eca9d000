"""Run ``hermes`` so that ``-z`` waits for its MCP servers (executed by Hermes' own
Python; it imports nothing from hbench).

hermes-agent 0.19's one-shot mode starts MCP discovery in a background thread and builds
its agent without joining it: a server that takes longer than Hermes' own start-up (a
cold Python importing ``mcp`` takes seconds) is silently missing from the tools. This
shim joins the discovery (``hermes_cli.mcp_startup.join_mcp_discovery``, bounded by
``HBENCH_HERMES_MCP_JOIN_S``) before the one-shot run, then runs Hermes' own ``main``.
"""

import os
import sys

# this file's folder is hbench's plugins/mcp: never let its modules shadow Hermes' own
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]


def _patch() -> None:
    try:
        import hermes_cli.oneshot as oneshot
        from hermes_cli.mcp_startup import join_mcp_discovery
    except ImportError:  # another Hermes layout: run it as it is
        return
    original = oneshot.run_oneshot

    def run_oneshot(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        join_mcp_discovery(timeout=float(os.environ.get("HBENCH_HERMES_MCP_JOIN_S", "120")))
        return original(*args, **kwargs)

    oneshot.run_oneshot = run_oneshot


if __name__ == "__main__":
    _patch()
    from hermes_cli.main import main

    sys.argv[0] = "hermes"
    sys.exit(main())
