"""A suite's fixtures: the files each attempt starts with, rendered in memory
(placeholders replaced in ``fixtures/`` templates; v0.1 ``scratch/`` copied verbatim) and
hashed.

Hashes are stable across machines: text files have CRLF turned into LF before hashing
and rendering, and a tree's sha256 is taken over its sorted relative POSIX paths and
bytes: for each file, ``path + NUL + str(len(bytes)) + NUL + bytes``. Nothing outside the
suite folder is ever read (:func:`confined`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Mapping

from hbench.errors import SuiteError
from hbench.models import Suite
from hbench.placeholders import substitute, unknown_msg
from hbench.suite_toml import LAYOUT_HBENCH, Problems, norm_bytes

#: files and folders never part of a fixture tree (byte-compilation and OS litter)
IGNORED_NAMES = frozenset({"__pycache__", ".DS_Store", "Thumbs.db", ".git"})
IGNORED_SUFFIXES = (".pyc", ".pyo")

#: the key a suite's resolved tools.jsonl has in the fixture tree hash (no fixture path
#: can start with "..", so it never collides with a file)
TOOLS_HASH_KEY = "../tools.jsonl"


# --------------------------------------------------------------------------- hashing


def tree_sha256(files: Mapping[str, bytes]) -> str:
    """sha256 over sorted relative POSIX paths and their bytes (see the module doc)."""
    h = hashlib.sha256()
    for rel in sorted(files):
        data = files[rel]
        h.update(rel.encode("utf-8") + b"\0" + str(len(data)).encode("ascii") + b"\0")
        h.update(data)
    return h.hexdigest()


def fixtures_digest(rendered: Mapping[str, bytes], tools_resolved: bytes | None) -> str:
    """The fixture sha256: the rendered tree, plus the resolved tools.jsonl when the suite
    has one (a suite without tools hashes exactly as before format 2)."""
    if tools_resolved is None:
        return tree_sha256(rendered)
    return tree_sha256({**rendered, TOOLS_HASH_KEY: tools_resolved})


# --------------------------------------------------------------------------- reading


def fixture_files(root: Path) -> dict[str, Path]:
    """Regular files under ``root`` by relative POSIX path (sorted), ignoring byte-code and
    OS litter. Raises ValueError on a symlink (it could point out of the sandbox)."""
    out: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in IGNORED_NAMES)
        base = Path(dirpath)
        for d in dirnames:
            if (base / d).is_symlink():
                raise ValueError(f"{(base / d).relative_to(root).as_posix()}: symlinks are not allowed in fixtures")
        for f in sorted(filenames):
            if f in IGNORED_NAMES or f.endswith(IGNORED_SUFFIXES):
                continue
            p = base / f
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                raise ValueError(f"{rel}: symlinks are not allowed in fixtures (copy the file instead)")
            if p.is_file():
                out[rel] = p
    return dict(sorted(out.items()))


def confined(root: Path, rel: str, problems: Problems, *, root_folder: bool = False) -> Path | None:
    """``root/rel`` when it resolves inside the suite folder ``root`` (already resolved),
    else None with a problem naming it. A suite root (``fixtures/``, ``scratch/``) must
    not be a symlink at all (``root_folder``): its target would be copied into every
    attempt, sent to the lane and written to the journal. Nothing outside the suite is
    ever read."""
    path = root.joinpath(*rel.split("/"))
    real = os.path.realpath(path)
    if root_folder and path.is_symlink():
        problems.add(rel, None, f"is a symlink (to {os.readlink(path)}); a suite's {rel}/ must be a real folder "
                                "inside the suite (replace the link with a copy of the files)")
        return None
    if real != str(root) and not real.startswith(str(root) + os.sep):
        problems.add(rel, None, f"resolves outside the suite folder (to {real}) through a symlink; "
                                "copy the file into the suite instead of linking it")
        return None
    return path


# --------------------------------------------------------------------------- rendering


def render_tree(root: Path, values: Mapping[str, str], template: bool, where: str, problems: Problems) -> dict[str, bytes]:
    """Render every file under ``root`` in memory: templates get placeholders replaced."""
    try:
        files = fixture_files(root)
    except ValueError as exc:
        problems.add(f"{where}/{str(exc).split(':', 1)[0]}", None, str(exc).split(": ", 1)[1])
        return {}
    out: dict[str, bytes] = {}
    for rel, path in files.items():
        data = norm_bytes(path.read_bytes())
        if template:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                out[rel] = data  # binary: copied verbatim
                continue
            for lineno, line in enumerate(text.split("\n"), start=1):
                unknown: list[str] = []
                substitute(line, values, unknown=unknown)
                if unknown:
                    problems.add(f"{where}/{rel}:{lineno}", None, unknown_msg(unknown, values))
            data = substitute(text, values).encode("utf-8")
        out[rel] = data
    return out


def rendered_fixtures(suite: Suite) -> dict[str, bytes]:
    """The rendered fixture tree in memory: relative POSIX path -> bytes."""
    if suite.fixtures_dir is None:
        return {}
    problems = Problems()
    root = Path(suite.fixtures_dir)
    if root.is_symlink() or confined(Path(suite.path), root.name, problems, root_folder=True) is None:
        # swapped for a link since the suite loaded: never copy what it points at
        raise SuiteError(f"{root}: is a symlink or leaves the suite folder; a suite's {root.name}/ must be "
                         "a real folder inside the suite", problems.lines)
    files = render_tree(Path(suite.fixtures_dir), suite.ground_truth, suite.layout == LAYOUT_HBENCH, "fixtures", problems)
    if problems.lines:  # the folder changed since the suite loaded
        raise SuiteError("\n".join(problems.lines), problems.lines)
    return files


def render_fixtures(suite: Suite, dest: Path) -> None:
    """Write the rendered fixture tree into ``dest`` (created; must be empty if it exists).

    Bytes-deterministic: the same suite gives the same bytes, whose :func:`tree_sha256`
    equals ``suite.fixtures_sha256``. Files are 0644, folders 0755.
    """
    dest = Path(dest)
    files = rendered_fixtures(suite)
    tools_path = Path(suite.path) / "tools.jsonl"
    tools_resolved = None
    if suite.layout == LAYOUT_HBENCH and tools_path.is_file():
        tools_resolved = substitute(norm_bytes(tools_path.read_bytes()).decode("utf-8", "replace"),
                                    suite.ground_truth).encode("utf-8")
    if fixtures_digest(files, tools_resolved) != suite.fixtures_sha256:
        raise SuiteError(
            f"{suite.fixtures_dir}: fixtures changed since suite {suite.name!r} loaded "
            "(reload the suite so its fixtures_sha256 matches what is rendered)"
        )
    if dest.exists() and any(dest.iterdir()):
        raise SuiteError(f"{dest}: not empty (render fixtures into a new or empty folder)")
    dest.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        target = dest.joinpath(*rel.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(target.parent, 0o755)
        target.write_bytes(data)
        os.chmod(target, 0o644)
