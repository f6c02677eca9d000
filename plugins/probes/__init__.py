"""Built-in probes (one module per probe). Registered by the hookimpl below.

Modules are imported here, but none imports a heavy library at import time: pynvml is
imported inside ``NvmlProbe.available()``.
"""

from __future__ import annotations

from hbench import hookimpl


@hookimpl
def hbench_register_probes(register):  # noqa: ANN001, ANN201
    from hbench.plugins.probes.host import HostProbe
    from hbench.plugins.probes.meminfo import MeminfoProbe
    from hbench.plugins.probes.nvidia_smi import NvidiaSmiProbe
    from hbench.plugins.probes.nvml import NvmlProbe
    from hbench.plugins.probes.prometheus import PrometheusProbe

    for cls in (NvmlProbe, NvidiaSmiProbe, MeminfoProbe, HostProbe, PrometheusProbe):
        register(cls)
