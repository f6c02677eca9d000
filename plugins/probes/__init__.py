"""Built-in probes (one module per probe). Registered by the hookimpl below.

Every probe module is imported here, at the top, and none imports a heavy library at
import time (listing plugins stays fast): pynvml is imported inside
``NvmlProbe.available()``, psutil where a probe uses it, httpx when the Prometheus probe
scrapes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hbench import hookimpl
from hbench.plugins.probes.host import HostProbe
from hbench.plugins.probes.meminfo import MeminfoProbe
from hbench.plugins.probes.nvidia_smi import NvidiaSmiProbe
from hbench.plugins.probes.nvml import NvmlProbe
from hbench.plugins.probes.prometheus import PrometheusProbe

if TYPE_CHECKING:  # pragma: no cover
    from hbench.hookspecs import RegisterProbe


@hookimpl
def hbench_register_probes(register: RegisterProbe) -> None:
    for cls in (NvmlProbe, NvidiaSmiProbe, MeminfoProbe, HostProbe, PrometheusProbe):
        register(cls)
