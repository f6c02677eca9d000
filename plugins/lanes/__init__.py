"""Built-in lane kinds (one module per kind) and the ready-made embedded lane. Registered
by the hookimpls below: each kind by its class (hbench keeps one instance), the lane as
the LaneSpec it is."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hbench import hookimpl

from hbench.plugins.lanes import embedded, llamacpp, nim, ollama, openai, sglang, vllm

if TYPE_CHECKING:  # pragma: no cover
    import typer

    from hbench.hookspecs import RegisterFound, RegisterLane, RegisterLaneKind


@hookimpl
def hbench_register_lane_kinds(register: RegisterLaneKind) -> None:
    register(openai.OpenAIKind, default=True)  # a lane without `kind` (and --lane-url) is plain OpenAI
    for cls in (llamacpp.LlamaCppKind, vllm.VLLMKind, nim.NIMKind, ollama.OllamaKind, sglang.SGLangKind,
                embedded.EmbeddedKind):
        register(cls)


@hookimpl
def hbench_register_lanes(register: RegisterLane) -> None:
    register(embedded.LANE)


@hookimpl
def hbench_register_commands(app: typer.Typer) -> None:
    from hbench.plugins.lanes import discover

    discover.register(app)


@hookimpl
def hbench_discover_lanes(register: RegisterFound, host: str) -> None:
    from hbench.models import LaneSpec
    from hbench.plugins.lanes.discover import DEFAULT_PORTS, discover, extra_ports, lanes_of

    for d in lanes_of(discover(sorted(set(DEFAULT_PORTS) | set(extra_ports())), host=host)):
        register(LaneSpec(name=d["name"], kind=d["kind"], base_url=d["base_url"], model=d.get("model"),
                          source="--discover"))
