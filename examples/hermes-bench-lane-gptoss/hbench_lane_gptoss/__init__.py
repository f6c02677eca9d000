"""An hbench plugin that adds one candidate lane: gpt-oss-20b served by llama-server.

``pip install hermes-bench-lane-gptoss`` and the lane shows up in ``hbench lanes``;
``hbench run --lanes gpt-oss-20b-llamacpp`` starts llama-server, scores it and stops it.
"""

from __future__ import annotations

import os

from hbench import LaneSpec, hookimpl

PORT = 8091
MODEL_PATH = os.environ.get("GPTOSS_GGUF", "~/models/gpt-oss-20b-mxfp4.gguf")


@hookimpl
def hbench_register_lanes(register):
    register(
        LaneSpec(
            name="gpt-oss-20b-llamacpp",
            kind="llamacpp",
            base_url=f"http://127.0.0.1:{PORT}/v1",
            model="gpt-oss-20b",
            start=[
                "llama-server",
                "-m", os.path.expanduser(MODEL_PATH),
                "--alias", "gpt-oss-20b",
                "--host", "127.0.0.1",
                "--port", str(PORT),
                "--ctx-size", "32768",
                "-ngl", "999",
                "--jinja",  # tool calls need the model's chat template
                "--metrics",
            ],
            ready_timeout_s=900,
            expected_memory_gb=16,
            context_length=32768,
            tags=["gpt-oss", "mxfp4", "llama.cpp"],
        )
    )
