"""Built-in lane kinds (one module per kind) and the ready-made embedded lane. Registered
by the hookimpls below: each kind by its class (hbench keeps one instance), the lane as
the LaneSpec it is."""

from __future__ import annotations

from hbench import hookimpl

from hbench.plugins.lanes import embedded, llamacpp, nim, ollama, openai, sglang, vllm


@hookimpl
def hbench_register_lane_kinds(register):
    register(openai.OpenAIKind, default=True)  # a lane without `kind` (and --lane-url) is plain OpenAI
    for cls in (llamacpp.LlamaCppKind, vllm.VLLMKind, nim.NIMKind, ollama.OllamaKind, sglang.SGLangKind,
                embedded.EmbeddedKind):
        register(cls)


@hookimpl
def hbench_register_lanes(register):
    register(embedded.LANE)


@hookimpl
def hbench_register_commands(app):
    from hbench.plugins.lanes import discover

    discover.register(app)


@hookimpl
def hbench_discover_lanes(register, host):
    from hbench.models import LaneSpec
    from hbench.plugins.lanes.discover import DEFAULT_PORTS, discover, extra_ports, lanes_of

    for d in lanes_of(discover(sorted(set(DEFAULT_PORTS) | set(extra_ports())), host=host)):
        register(LaneSpec(name=d["name"], kind=d["kind"], base_url=d["base_url"], model=d.get("model"),
                          source="--discover"))
