"""``hbench probe``: telemetry now, every probe's status (and why one is unavailable) and
its readings; ``--watch`` keeps reading."""

import json
import time
from typing import Any, Optional

import typer

from hbench import cli


def probe_cmd(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output (JSON lines with --watch)."),
    watch: bool = typer.Option(False, "--watch", help="Keep reading until Ctrl-C (or --count readings)."),
    hz: float = typer.Option(1.0, "--hz", help="Readings per second with --watch."),
    count: Optional[int] = typer.Option(None, "--count", help="With --watch: stop after N readings."),
    pid: Optional[int] = typer.Option(None, "--pid", help="A lane server's pid: report its process-tree RSS."),
    lane: Optional[str] = typer.Option(None, "--lane", help="Use this lane's options (metrics_url)."),
    metrics_url: Optional[str] = typer.Option(None, "--metrics-url",
                                              help="Scrape this Prometheus URL (DCGM exporter, vLLM /metrics)."),
) -> None:
    """Telemetry now: every probe's status (and why one is unavailable) and its readings."""
    from hbench.errors import BadInput
    from hbench.models import LaneSpec
    from hbench.sampler import Sampler

    if not hz > 0:
        raise BadInput(f"--hz must be a positive number of readings per second, got {hz}")
    if count is not None and count < 1:
        raise BadInput(f"--count must be at least 1, got {count}")
    if pid is not None:
        import psutil

        if not psutil.pid_exists(pid):
            raise BadInput(f"--pid {pid}: no such process (give the pid of a running lane server)")
    spec = None
    if lane is not None:
        lanes = cli.all_lanes()
        if lane not in lanes:
            raise BadInput(f"--lane {lane!r}: unknown lane (configured: {', '.join(sorted(lanes)) or 'none'}; "
                           "see `hbench lanes`)")
        spec = lanes[lane]
    if metrics_url:
        spec = LaneSpec(name=spec.name if spec else "probe", options={**(spec.options if spec else {}),
                                                                      "metrics_url": metrics_url})
    sampler = Sampler([e.obj for e in cli.registries().probes.entries()], hz=hz)
    sampler.open(spec.name if spec else "probe", pid=pid, lane=spec)

    def show(reading: dict[str, Any], first: bool) -> None:
        if as_json:
            typer.echo(json.dumps(reading, indent=None if watch else 2))
            return
        if first:
            for name, p in reading["probes"].items():
                typer.echo(f"{name:<12} {'ok' if p['status'] == 'ok' else p['status']}")
            typer.echo("")
        vals = reading["readings"]
        typer.echo("  ".join(f"{k}={v}" for k, v in vals.items()) if vals else "no readings")

    try:
        time.sleep(0.3)  # CPU percent is a rate: give it an interval
        n = 0
        while True:
            show(sampler.reading(), first=n == 0)
            n += 1
            if not watch or (count is not None and n >= count):
                break
            time.sleep(1.0 / hz)
    except KeyboardInterrupt:
        pass
    finally:
        sampler.close_probes()


def register(app: typer.Typer) -> None:
    app.command("probe")(probe_cmd)
