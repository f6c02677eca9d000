"""Sandbox confinement: every escape is refused with a ToolError, never an exception
that reaches the agent, and reads are capped."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hbench.sandbox import Sandbox, attempt_dir, safe_component
from hbench.tools import ToolError


@pytest.fixture()
def box(tmp_path: Path) -> Sandbox:
    fixtures = tmp_path / "fixtures"
    (fixtures / "notes").mkdir(parents=True)
    (fixtures / "notes" / "budget.md").write_text("Budget: 42,000\n")
    (fixtures / "readme.txt").write_text("hello\n")
    return Sandbox.create(fixtures, tmp_path / "out" / "scratch" / "lane" / "p1" / "1")


def test_create_is_a_fresh_copy(tmp_path: Path, box: Sandbox) -> None:
    (box.root / "readme.txt").write_text("changed by attempt 1\n")
    (box.root / "extra.txt").write_text("left behind\n")
    again = Sandbox.create(tmp_path / "fixtures", box.root)
    assert (again.root / "readme.txt").read_text() == "hello\n"
    assert not (again.root / "extra.txt").exists()
    assert (tmp_path / "fixtures" / "readme.txt").read_text() == "hello\n"


def test_create_without_fixtures_is_empty(tmp_path: Path) -> None:
    sb = Sandbox.create(None, tmp_path / "x")
    assert list(sb.root.iterdir()) == []


def test_resolve_inside(box: Sandbox) -> None:
    assert box.resolve(".") == box.root
    assert box.resolve("") == box.root
    assert box.resolve("./notes/budget.md") == box.root / "notes" / "budget.md"
    assert box.resolve("notes//budget.md") == box.root / "notes" / "budget.md"
    assert box.resolve("missing/file.txt") == box.root / "missing" / "file.txt"


@pytest.mark.parametrize(
    "path, words",
    [
        ("../", "'..'"),
        ("../../etc/passwd", "'..'"),
        ("notes/../../x", "'..'"),
        ("/etc/passwd", "absolute"),
        ("C:\\Windows\\win.ini", "absolute"),
        ("\\\\server\\share", "absolute"),
        ("~/.ssh/id_rsa", "'~'"),
        ("~root", "'~'"),
        ("notes\x00.md", "NUL"),
        ("a" * 5000, "longer"),
    ],
)
def test_resolve_refuses(box: Sandbox, path: str, words: str) -> None:
    with pytest.raises(ToolError, match=words):
        box.resolve(path)


def test_resolve_refuses_non_string(box: Sandbox) -> None:
    with pytest.raises(ToolError, match="must be a string"):
        box.resolve(["a"])


def test_symlink_out_refused_anywhere_in_the_path(tmp_path: Path, box: Sandbox) -> None:
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "key.txt").write_text("s3cret")
    os.symlink(outside, box.root / "linkdir")
    os.symlink(outside / "key.txt", box.root / "linkfile")
    os.symlink("/etc/passwd", box.root / "passwd")
    for p in ("linkdir", "linkdir/key.txt", "linkfile", "passwd"):
        with pytest.raises(ToolError, match="symlink that points outside"):
            box.resolve(p)
        with pytest.raises(ToolError):
            box.read_bytes(p)


def test_symlink_inside_is_followed(box: Sandbox) -> None:
    os.symlink("notes/budget.md", box.root / "alias.md")
    data, size = box.read_bytes("alias.md")
    assert data == b"Budget: 42,000\n" and size == len(data)


def test_device_fifo_and_hard_link_refused(tmp_path: Path, box: Sandbox) -> None:
    os.mkfifo(box.root / "pipe")
    t = time.monotonic()
    with pytest.raises(ToolError, match="FIFO"):
        box.read_bytes("pipe")  # must not block waiting for a writer
    assert time.monotonic() - t < 1.0
    outside = tmp_path / "outside.txt"
    outside.write_text("not yours")
    os.link(outside, box.root / "hard.txt")
    with pytest.raises(ToolError, match="hard link"):
        box.read_bytes("hard.txt")
    with pytest.raises(ToolError, match="directory"):
        box.read_bytes("notes")
    with pytest.raises(ToolError, match="no such file"):
        box.read_bytes("nope.txt")


def test_dev_zero_refused_even_if_linked_in(box: Sandbox) -> None:
    os.symlink("/dev/zero", box.root / "zero")
    with pytest.raises(ToolError):
        box.read_bytes("zero")
    with pytest.raises(ToolError, match="absolute"):
        box.read_bytes("/dev/zero")


def test_check_regular_names_device(box: Sandbox) -> None:
    st_dev = os.stat("/dev/null")
    with pytest.raises(ToolError, match="device file"):
        box.check_regular(Path("/dev/null"), st_dev, "null")


def test_big_file_read_is_capped(box: Sandbox) -> None:
    big = box.root / "big.log"
    with open(big, "wb") as f:
        f.truncate(1 << 30)  # sparse 1 GiB
    t = time.monotonic()
    data, size = box.read_bytes("big.log")
    assert size == 1 << 30
    assert len(data) == box.max_read_bytes
    assert time.monotonic() - t < 1.0


def test_walk_is_bounded_and_does_not_follow_links(tmp_path: Path, box: Sandbox) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "x.txt").write_text("x")
    os.symlink(outside, box.root / "out")
    names = [box.rel(p) for p, _ in box.walk(box.root)]
    assert "out" in names and "out/x.txt" not in names
    deep = box.root
    for i in range(20):
        deep = deep / f"d{i}"
    deep.mkdir(parents=True)
    rels = [box.rel(p) for p, _ in box.walk(box.root, max_depth=3)]
    assert max(r.count("/") for r in rels) <= 2
    with pytest.raises(ToolError, match="more than 5 entries"):
        list(box.walk(box.root, max_entries=5))


def test_attempt_dirs_are_separate_per_lane(tmp_path: Path) -> None:
    a = attempt_dir(tmp_path, "lane-a", "p1", 1)
    b = attempt_dir(tmp_path, "lane-b", "p1", 1)
    assert a != b and a.parent.parent != b.parent.parent
    assert attempt_dir(tmp_path, "../../evil", "../p", 2).resolve().is_relative_to(tmp_path / "scratch")


@given(st.text(max_size=40))
def test_safe_component_never_escapes(name: str) -> None:
    c = safe_component(name)
    assert c and "/" not in c and c not in (".", "..") and not c.startswith(".")


_path_chars = st.sampled_from(["a", "b", ".", "..", "/", "~", "\\", "\x00", "notes", "budget.md", "C:", "link"])


@settings(max_examples=300, deadline=None)
@given(st.lists(_path_chars, max_size=8).map("".join))
def test_resolve_never_leaves_root(tmp_path_factory: pytest.TempPathFactory, path: str) -> None:
    root = tmp_path_factory.mktemp("root")
    (root / "notes").mkdir()
    os.symlink("/", root / "link")
    sb = Sandbox(root)
    try:
        real = sb.resolve(path)
    except ToolError:
        return
    real_s = os.path.realpath(real)
    assert real_s == str(sb.root) or real_s.startswith(str(sb.root) + os.sep)


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_real_device_node_in_scratch_refused(box: Sandbox) -> None:
    import stat as _stat

    os.mknod(box.root / "zero", _stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero's numbers
    with pytest.raises(ToolError, match="device file"):
        box.read_bytes("zero")
