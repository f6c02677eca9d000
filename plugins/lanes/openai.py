"""``openai``: any OpenAI-compatible endpoint (SGLang, LM Studio, a hosted API, ...).

Ready = ``GET /v1/models`` answers 200. No server metrics. A managed ``openai`` lane
runs whatever ``start`` says (``{port}`` is filled in) and is ready the same way.
"""

from __future__ import annotations

from hbench.lanes import LaneKind


class OpenAIKind(LaneKind):
    name = "openai"
    description = "any OpenAI-compatible server; ready when /v1/models answers"
    tool_call_fix = (
        "enable the server's tool-call parser: llama-server needs --jinja; vLLM needs "
        "--enable-auto-tool-choice --tool-call-parser hermes (or your model's parser); "
        "SGLang needs --tool-call-parser"
    )
