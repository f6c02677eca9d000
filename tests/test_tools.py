"""The built-in tools: behaviour, refusals the model sees, and bounds."""

from __future__ import annotations

import ast
import fnmatch
import os
import time
from pathlib import Path

import pytest
import re2
from hypothesis import given, settings
from hypothesis import strategies as st

from hbench.plugin_manager import get_registries
from hbench.plugins.tools.calculate import evaluate, format_number
from hbench.plugins.tools.glob import translate
from hbench.sandbox import Sandbox
from hbench.tools import ToolError


@pytest.fixture()
def box(tmp_path: Path) -> Sandbox:
    fx = tmp_path / "fixtures"
    (fx / "notes" / "deep").mkdir(parents=True)
    (fx / "notes" / "budget.md").write_text("# Budget\nTotal: 42,000\nowner: Dana\n")
    (fx / "notes" / "deep" / "todo.md").write_text("- call Dana\n- pay invoice\n")
    (fx / "data.csv").write_text("a,b\n1,2\n")
    (fx / "blob.bin").write_bytes(b"\x00\x01\x02budget")
    return Sandbox.create(fx, tmp_path / "scratch")


@pytest.fixture()
def tools() -> dict:
    reg = get_registries().tools
    return {n: reg.get(n) for n in reg.names()}


def call(tools: dict, name: str, box: Sandbox, **args: object) -> str:
    return tools[name].call(args, box)


def test_registered_with_fixed_names_and_schemas(tools: dict) -> None:
    assert set(tools) >= {"list_dir", "read_file", "glob", "grep", "calculate"}
    for t in tools.values():
        s = t.schema()
        assert s["type"] == "function" and s["function"]["name"] == t.name
        assert s["function"]["parameters"]["type"] == "object"


def test_list_dir(tools: dict, box: Sandbox) -> None:
    out = call(tools, "list_dir", box, path=".")
    assert out.splitlines()[0] == ".:"
    assert "notes/" in out and "data.csv (8 B)" in out
    assert "todo.md" in call(tools, "list_dir", box, path="notes/deep")
    assert call(tools, "list_dir", box) == out  # path defaults to the root
    with pytest.raises(ToolError, match="is a file"):
        call(tools, "list_dir", box, path="data.csv")
    with pytest.raises(ToolError, match="no such folder"):
        call(tools, "list_dir", box, path="nope")
    with pytest.raises(ToolError, match="'..'"):
        call(tools, "list_dir", box, path="..")


def test_read_file(tools: dict, box: Sandbox) -> None:
    assert call(tools, "read_file", box, path="notes/budget.md").startswith("# Budget\nTotal: 42,000")
    with pytest.raises(ToolError, match="binary"):
        call(tools, "read_file", box, path="blob.bin")
    with pytest.raises(ToolError, match="needs a 'path'"):
        call(tools, "read_file", box)
    with pytest.raises(ToolError, match="absolute"):
        call(tools, "read_file", box, path="/etc/passwd")


def test_read_file_caps_a_huge_file(tools: dict, box: Sandbox) -> None:
    with open(box.root / "huge.txt", "wb") as f:
        f.write(b"line\n" * 40_000)  # 200 KB of text, then a sparse tail up to 1 GiB
        f.truncate(1 << 30)
    t = time.monotonic()
    out = call(tools, "read_file", box, path="huge.txt")
    assert time.monotonic() - t < 1.0
    assert out.startswith("line\nline\n")
    assert "[truncated: showing the first 32.0 KiB of 1.0 GiB]" in out


def test_glob(tools: dict, box: Sandbox) -> None:
    assert call(tools, "glob", box, pattern="*.csv") == "data.csv"
    assert call(tools, "glob", box, pattern="**/*.md").splitlines() == ["notes/budget.md", "notes/deep/todo.md"]
    assert call(tools, "glob", box, pattern="notes/*") .splitlines() == ["notes/budget.md", "notes/deep/"]
    assert "no paths match" in call(tools, "glob", box, pattern="*.xyz")
    for bad, why in (("../*", "'..'"), ("/etc/*", "not relative"), ("~/*", "not relative")):
        with pytest.raises(ToolError, match=why):
            call(tools, "glob", box, pattern=bad)


def test_glob_bounded(tools: dict, box: Sandbox) -> None:
    d = box.root / "many"
    d.mkdir()
    for i in range(300):
        (d / f"f{i:03}.txt").write_text("")
    out = call(tools, "glob", box, pattern="many/*.txt")
    assert out.count("\n") == 200 and "more than 200 matches" in out


def test_grep(tools: dict, box: Sandbox) -> None:
    out = call(tools, "grep", box, pattern="dana")
    assert out.splitlines() == ["notes/budget.md:3: owner: Dana", "notes/deep/todo.md:1: - call Dana"]
    assert "no lines match" in call(tools, "grep", box, pattern="DANA")  # smart case
    assert call(tools, "grep", box, pattern=r"Total: \d+", path="notes/budget.md") == "notes/budget.md:2: Total: 42,000"
    with pytest.raises(ToolError, match="RE2 syntax"):
        call(tools, "grep", box, pattern=r"(a)\1")
    with pytest.raises(ToolError, match="'..'"):
        call(tools, "grep", box, pattern="x", path="../")
    with pytest.raises(ToolError, match="no such file"):
        call(tools, "grep", box, pattern="x", path="nope")


def test_grep_catastrophic_regex_is_linear(tools: dict, box: Sandbox) -> None:
    (box.root / "evil.txt").write_text("a" * 200_000 + "!\n")
    t = time.monotonic()
    out = call(tools, "grep", box, pattern="(a+)+$", path="evil.txt")
    assert time.monotonic() - t < 2.0
    assert "no lines match" in out
    t = time.monotonic()
    call(tools, "grep", box, pattern="(x+x+)+y")
    assert time.monotonic() - t < 2.0


def test_grep_skips_escapes_and_caps_big_files(tmp_path: Path, tools: dict, box: Sandbox) -> None:
    (tmp_path / "secret.txt").write_text("dana secret\n")
    os.symlink(tmp_path / "secret.txt", box.root / "leak.txt")
    with open(box.root / "big.log", "wb") as f:
        f.write(b"dana at the start\n" + b"filler line\n" * 200_000)  # 2.4 MB of text
        f.truncate(1 << 30)
    t = time.monotonic()
    out = call(tools, "grep", box, pattern="dana")
    assert time.monotonic() - t < 2.0
    assert "secret" not in out.replace("skipped leak.txt", "")
    assert "skipped leak.txt" in out
    assert "big.log:1: dana at the start" in out
    assert "only the first 1.0 MiB of big.log (1.0 GiB) was searched" in out


@pytest.mark.parametrize(
    "expr, value",
    [("(42000 - 1250) * 0.2", "8150"), ("10/4", "2.5"), ("2**10", "1024"), ("2^10", "1024"),
     ("7 // 2", "3"), ("-3 % 5", "2"), ("sqrt(2)", "1.41421356237"), ("round(2.567, 2)", "2.57"),
     ("max(1, 5, 3)", "5"), ("abs(-4)", "4"), ("42000 * 1.1", "46200"), ("3 × 4 ÷ 2", "6"), (12, "12")],
)
def test_calculate(tools: dict, box: Sandbox, expr: object, value: str) -> None:
    assert call(tools, "calculate", box, expression=expr) == value


@pytest.mark.parametrize(
    "expr, why",
    [("9**9**9", "too large"), ("10**10**10", "too large"), ("2**5000", "too large"), ("1e308*10", "too large"),
     ("1/0", "division by zero"), ("__import__('os').system('id')", "not allowed"), ("x + 1", "unknown name"),
     ("'a' * 3", "only numbers"), ("True + 1", "only numbers"), ("42,000 + 1", "thousands separators"),
     ("[1,2]", "not allowed"), ("(1).real", "not allowed"), ("round(5, -10**9)", "digits"),
     ("1 +", "not an arithmetic"), ("", "needs an 'expression'"), ("1+" * 300 + "1", "longer than"),
     ("(-8) ** 0.5", "negative"), ("0 ** -1", "division by zero")],
)
def test_calculate_refuses_quickly(expr: str, why: str) -> None:
    t = time.monotonic()
    with pytest.raises(ToolError, match=why):
        evaluate(expr)
    assert time.monotonic() - t < 0.5


_num = st.integers(min_value=-1000, max_value=1000)


def _expr(depth: int = 3) -> st.SearchStrategy[str]:
    leaf = _num.map(lambda n: f"({n})")
    if depth == 0:
        return leaf
    sub = _expr(depth - 1)
    return st.one_of(leaf, st.tuples(sub, st.sampled_from(["+", "-", "*"]), sub).map(lambda t: f"({t[0]} {t[1]} {t[2]})"))


@settings(max_examples=200, deadline=None)
@given(_expr())
def test_calculate_matches_python_arithmetic(expr: str) -> None:
    expected = eval(compile(ast.parse(expr, mode="eval"), "<t>", "eval"))  # test oracle only
    assert evaluate(expr) == expected
    assert format_number(evaluate(expr)) == str(expected)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab*?[]!.", min_size=1, max_size=8), st.text(alphabet="ab.", max_size=8))
def test_glob_translate_agrees_with_fnmatch_within_one_folder(pattern: str, name: str) -> None:
    try:
        rx = re2.compile(translate(pattern))
    except re2.error:
        return
    if not name or name in (".",):
        return
    assert bool(rx.fullmatch(name)) == fnmatch.fnmatchcase(name, pattern), translate(pattern)
