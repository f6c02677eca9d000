"""``--shard I/N``: a deterministic slice of a run's work, for ``hbench merge``.

The work of a lane is its plan: every ``(prompt, n)`` it would run, in suite order
(prompt order, then ``n``). Shard ``I`` of ``N`` (``I`` from 0, as a Kubernetes Indexed
Job's ``JOB_COMPLETION_INDEX`` counts) takes the items at positions ``p`` with
``(p + offset(lane)) % N == I``, where ``offset`` is a fixed function of the lane's name
(so with fewer items than shards, different lanes land on different shards). Pure: the
same lane, plan and ``N`` give the same slices on every machine and every run; the ``N``
slices are disjoint and together hold the whole plan; their sizes differ by at most one.

Each shard writes ``OUT/shard.json`` (:func:`write_manifest`): the shard's index and
count, the suite, and per lane its fingerprint and whole plan, so that ``hbench merge``
can refuse shards of different runs and count what a missing shard held.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Sequence, TypeVar

from hbench.errors import BadInput

T = TypeVar("T")

MANIFEST = "shard.json"
MANIFEST_SCHEMA = "hbench.shard/1"
#: most shards: more is a typo (and a plan is rarely that long)
MAX_SHARDS = 10_000

_SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


def parse_shard(text: str, flag: str = "--shard") -> tuple[int, int]:
    """``"1/3"`` -> ``(1, 3)``. Raises :class:`BadInput` naming the flag and the fix."""
    m = _SHARD.fullmatch(text or "")
    fix = (f"write it as {flag} I/N with 0 <= I < N, like {flag} 0/3 (Kubernetes: "
           f"$JOB_COMPLETION_INDEX/N; Slurm: $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT with --array=0-(N-1))")
    if not m:
        raise BadInput(f"{flag} {text!r}: not I/N; {fix}")
    index, count = int(m.group(1)), int(m.group(2))
    if not 1 <= count <= MAX_SHARDS or not 0 <= index < count:
        raise BadInput(f"{flag} {text!r}: shard {index} of {count} does not exist (N from 1 to {MAX_SHARDS}, "
                       f"I from 0 to N-1); {fix}")
    return index, count


def lane_offset(lane: str, count: int) -> int:
    """A fixed function of the lane's name (sha256), not Python's salted ``hash``."""
    return int.from_bytes(hashlib.sha256(lane.encode("utf-8")).digest()[:8], "big") % count


def shard_of(lane: str, position: int, count: int) -> int:
    """The shard that runs item ``position`` of ``lane``'s plan."""
    return (position + lane_offset(lane, count)) % count


def select(lane: str, plan: Sequence[T], index: int, count: int) -> list[T]:
    """Shard ``index`` of ``count``'s part of ``lane``'s ``plan``, in plan order."""
    if not 0 <= index < count:
        raise ValueError(f"shard {index} of {count}")
    off = lane_offset(lane, count)
    return [item for pos, item in enumerate(plan) if (pos + off) % count == index]


def write_manifest(out: Path, manifest: dict[str, Any]) -> Path:
    """``OUT/shard.json``, replaced whole (written beside it, then renamed)."""
    path = Path(out) / MANIFEST
    tmp = path.with_name(f".{MANIFEST}.tmp")
    tmp.write_text(json.dumps({"schema": MANIFEST_SCHEMA, **manifest}, ensure_ascii=False, indent=1) + "\n",
                   encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_manifest(folder: Path) -> dict[str, Any]:
    """A shard folder's manifest; :class:`BadInput` naming the folder and the fix."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise BadInput(f"{folder}: no {MANIFEST}; it is not the --out of an `hbench run --shard I/N` "
                       "(give merge the shards' results folders)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadInput(f"{path}: unreadable ({exc}); run that shard again") from None
    if not isinstance(data, dict) or data.get("schema") != MANIFEST_SCHEMA:
        raise BadInput(f"{path}: schema {data.get('schema') if isinstance(data, dict) else None!r}, this hbench "
                       f"reads {MANIFEST_SCHEMA!r}; run the shards again with this hbench")
    for key, typ in (("index", int), ("count", int), ("suite", dict), ("lanes", dict)):
        if not isinstance(data.get(key), typ):
            raise BadInput(f"{path}: key {key!r} missing or not a {typ.__name__}; run that shard again")
    return data


__all__ = ["parse_shard", "shard_of", "select", "lane_offset", "write_manifest", "read_manifest", "MANIFEST"]
