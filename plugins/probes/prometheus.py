"""``prometheus``: scrape a Prometheus text endpoint and map the series hbench knows.

This is how a lane on another machine gets telemetry: point the lane's
``options.metrics_url`` at the node's DCGM exporter (``http://node:9400/metrics``) or at
the server's own ``/metrics`` (vLLM; llama.cpp with ``--metrics``). Without a URL the
probe is unavailable. Parsing is ``prometheus_client.parser``, never by hand.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, ClassVar

from hbench.probes import Probe

if TYPE_CHECKING:  # httpx is imported where it is used: listing plugins must stay fast
    import httpx

ENV_URL = "HBENCH_METRICS_URL"
MIB_TO_GIB = 1 / 1024

#: max over label sets (per-GPU series -> the busiest / hottest GPU)
_MAX = {"DCGM_FI_DEV_GPU_UTIL": "gpu_util", "DCGM_FI_DEV_GPU_TEMP": "gpu_temp_c"}
#: summed over label sets, with a scale
_SUM = {"DCGM_FI_DEV_POWER_USAGE": ("power_w", 1.0), "DCGM_FI_DEV_FB_USED": ("gpu_mem_used_gb", MIB_TO_GIB),
        "DCGM_FI_DEV_FB_FREE": ("_fb_free_gb", MIB_TO_GIB)}
#: KV-cache usage as a fraction 0..1 (vLLM's "_perc" is a fraction too)
_KV = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "llamacpp:kv_cache_usage_ratio")
_VLLM = {"vllm:num_requests_running": "vllm_requests_running", "vllm:num_requests_waiting": "vllm_requests_waiting"}


def map_metrics(text: str) -> dict[str, Any]:
    """Prometheus exposition text -> hbench readings. Unknown series are ignored; every
    ``llamacpp:NAME`` sample is kept as ``llamacpp_NAME``. Raises ValueError for text
    that is not Prometheus format."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, Any] = {}
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            name, value = s.name, float(s.value)
            if value != value:  # NaN: unknown
                continue
            if name in _MAX:
                key = _MAX[name]
                out[key] = max(out.get(key, value), value)
            elif name in _SUM:
                key, scale = _SUM[name]
                sums[key] = sums.get(key, 0.0) + value * scale
            elif name in _KV:
                out["kv_cache_usage"] = max(out.get("kv_cache_usage", value), value)
            elif name in _VLLM:
                out[_VLLM[name]] = out.get(_VLLM[name], 0.0) + value
            if name.startswith("llamacpp:") and not s.labels:
                out["llamacpp_" + name.split(":", 1)[1]] = value
    free = sums.pop("_fb_free_gb", None)
    out.update(sums)
    if free is not None and "gpu_mem_used_gb" in out:
        out["gpu_mem_total_gb"] = out["gpu_mem_used_gb"] + free
    return out


class PrometheusProbe(Probe):
    name: ClassVar[str] = "prometheus"
    description: ClassVar[str] = "a Prometheus /metrics URL: DCGM exporter (remote GPUs), vLLM, llama.cpp"
    priority: ClassVar[int] = 10  # the lane's own node beats this machine's GPUs
    local: ClassVar[bool] = False  # it reads whichever node the URL names

    def __init__(self, url: str | None = None, timeout_s: float = 1.5):
        self._explicit = url
        self._url: str | None = url
        self._timeout_s = timeout_s
        self._http: httpx.Client | None = None

    def set_target(self, pid: int | None = None, lane: Any = None) -> None:
        opts = getattr(lane, "options", None)
        lane_url = opts.get("metrics_url") if isinstance(opts, dict) else None
        self._url = self._explicit or (str(lane_url) if lane_url else None) or os.environ.get(ENV_URL) or None

    @property
    def url(self) -> str | None:
        return self._url

    def available(self) -> tuple[bool, str]:
        if self._url is None:
            self.set_target()
        if not self._url:
            return False, (f"no metrics URL: set options.metrics_url on the lane (a DCGM exporter such as "
                           f"http://gpu-node:9400/metrics, or the server's /metrics) or {ENV_URL}")
        if not self._url.startswith(("http://", "https://")):
            return False, f"metrics URL {self._url!r} must start with http:// or https://"
        import httpx

        self._http = httpx.Client(timeout=self._timeout_s, follow_redirects=True)
        try:
            self.sample()
        except (httpx.HTTPError, ValueError) as exc:
            self.close()
            return False, f"cannot scrape {self._url}: {type(exc).__name__}: {exc}"
        return True, "ok"

    def sample(self) -> dict[str, Any]:
        assert self._http is not None and self._url
        r = self._http.get(self._url)
        r.raise_for_status()
        try:
            return map_metrics(r.text)
        except ValueError as exc:
            raise ValueError(f"{self._url} did not serve Prometheus text: {exc}") from None

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
