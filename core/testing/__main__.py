"""``python -m hbench.testing serve ...``: the scripted server as a process (a managed
lane's ``start`` command in tests)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Sequence

from hbench.testing.scripts import DEFAULT_MODEL, load_script_file, ScriptError
from hbench.testing.server import ScriptedServer


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hbench.testing",
                                     description="hbench's scripted OpenAI-compatible test server")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve until SIGTERM; prints 'ready <url>' once listening")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=0, help="0 = any free port (the ready line says which)")
    s.add_argument("--script", type=Path, help="script file (JSON; see the module docstring)")
    s.add_argument("--model", help=f"served model id (default: the script's, else {DEFAULT_MODEL})")
    s.add_argument("--latency", type=float, default=0.0, help="seconds before each response's first byte")
    s.add_argument("--token-latency", type=float, default=0.0, help="seconds per streamed token")
    s.add_argument("--timings", action="store_true", help="add llama.cpp-style timings")
    s.add_argument("--loading", type=float, default=0.0, help="answer 503 'Loading model' for S seconds")
    s.add_argument("--api-key-env", help="require 'Authorization: Bearer $VAR'")
    s.add_argument("--record", type=Path, help="append every request to this JSONL file")
    s.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = parser.parse_args(argv)

    kwargs: dict[str, Any] = {}
    try:
        if args.script:
            kwargs = load_script_file(args.script)
        if args.model:
            kwargs["model"] = args.model
        api_key = None
        if args.api_key_env:
            api_key = os.environ.get(args.api_key_env)
            if not api_key:
                raise ScriptError(f"--api-key-env {args.api_key_env}: that environment variable is not set")
        srv = ScriptedServer(kwargs.pop("scripts", None), latency_s=args.latency,
                             token_latency_s=args.token_latency, timings=args.timings, loading_s=args.loading,
                             api_key=api_key, host=args.host, port=args.port, record_path=args.record,
                             verbose=args.verbose, **kwargs)
        srv.start()
    except ScriptError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port} ({exc.strerror or exc}); pick another --port",
              file=sys.stderr)
        return 2

    done = threading.Event()

    def _stop(_sig: int, _frame: Any) -> None:
        done.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"ready {srv.url}", flush=True)
    while not done.wait(0.5):
        pass
    srv.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
