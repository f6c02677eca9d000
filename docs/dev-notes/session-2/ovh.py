import sys, tempfile
from pathlib import Path
from hbench.models import Throughput
try:  # after: throughput is a plugin behind a hook
    from hbench.plugin_manager import get_plugins
    import hbench.plugins.throughput.measure as m
    m.measure = lambda running, **kw: Throughput(error="off for this benchmark")
except ImportError:  # before: core module
    import hbench.throughput as m
    m.measure = lambda running, **kw: Throughput(error="off for this benchmark")
from benchmarks.overhead import instant
with tempfile.TemporaryDirectory() as d:
    r = instant(Path(d), 10)
print(f"{sys.argv[1]}: {r['cpu_ms_per_turn']:.2f} ms CPU/turn, {r['wall_ms_per_turn']:.2f} ms wall/turn, once-per-run {r['fixed_cpu_s']*1000:.0f} ms CPU")
