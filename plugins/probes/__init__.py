"""Built-in probes (one module per probe). Registered by the hookimpl below.

Modules are imported here, but none imports a heavy library at import time: pynvml is
imported inside ``NvmlProbe.available()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hbench import hookimpl

if TYPE_CHECKING:  # pragma: no cover
    from hbench.hookspecs import RegisterProbe


@hookimpl
def hbench_register_probes(register: RegisterProbe) -> None:
    from hbench.plugins.probes.host import HostProbe
    from hbench.plugins.probes.meminfo import MeminfoProbe
    from hbench.plugins.probes.nvidia_smi import NvidiaSmiProbe
    from hbench.plugins.probes.nvml import NvmlProbe
    from hbench.plugins.probes.prometheus import PrometheusProbe

    for cls in (NvmlProbe, NvidiaSmiProbe, MeminfoProbe, HostProbe, PrometheusProbe):
        register(cls)
