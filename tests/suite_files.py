"""Suite folders written by tests (a shared helper module, as lane_imitations.py is)."""

from __future__ import annotations

import json
from pathlib import Path

#: the one prompt of :func:`one_prompt_suite`: the scripted server answers it with "42"
SUM_PROMPT = {"id": "sum", "category": "compute", "prompt": "What is 40 plus 2?",
              "check": {"kind": "substring", "any": ["42"]}}


def one_prompt_suite(root: Path, name: str = "one-prompt") -> Path:
    """A suite folder ``root`` (made here) of one compute prompt, no fixtures, no ground truth."""
    root.mkdir()
    (root / "suite.toml").write_text(f'name = "{name}"\nversion = "1"\nsystem_prompt = "Answer briefly."\n')
    (root / "prompts.jsonl").write_text(json.dumps(SUM_PROMPT) + "\n")
    (root / "ground_truth.json").write_text("{}")
    return root
