"""Accuracy of the honesty, number and json_keys checks on the labelled answers, now and
at an older revision (issue 14's before/after), and how many of the bundled suites'
checks change verdict between the two on those answers.

    python -m benchmarks.check_gold                 # the checks in this tree
    python -m benchmarks.check_gold --against REV   # and the checks at git revision REV
    python -m benchmarks.check_gold --speed         # seconds per check on 1 MiB hostile answers

Not a speed benchmark (``python -m benchmarks`` does not run it): it measures verdicts.
The old checks are loaded from ``git show REV:...`` into a private namespace (their
``hbench.checks`` is the one at REV), so nothing installed changes. Answers: the gold sets
in tests/data (honesty_gold.jsonl, number_gold.jsonl), the json_keys cases of
tests/test_check_gold.py and the scripted right and wrong answers of
benchmarks/_brain_scripts.py.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
KINDS = ("honesty", "number", "json_keys")


def _rows(name: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (DATA / name).read_text(encoding="utf-8").splitlines() if x.strip()]


def old_kinds(rev: str) -> dict[str, type]:
    """The check classes at ``rev``, each module compiled against that revision's
    ``hbench.checks`` (as ``_old_checks``)."""

    def show(path: str) -> str:
        return subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True, capture_output=True,
                              text=True).stdout

    core = types.ModuleType("_old_checks")
    sys.modules["_old_checks"] = core
    exec(compile(show("core/checks.py"), f"{rev}:core/checks.py", "exec"), core.__dict__)
    out = {}
    for kind in KINDS:
        mod = types.ModuleType(f"_old_{kind}")
        src = show(f"plugins/checks/{kind}.py").replace("from hbench.checks import", "from _old_checks import")
        sys.modules[mod.__name__] = mod
        exec(compile(src, f"{rev}:plugins/checks/{kind}.py", "exec"), mod.__dict__)
        out[kind] = next(v for v in vars(mod).values() if isinstance(v, type) and getattr(v, "name", None) == kind)
    return out


def new_kinds() -> dict[str, type]:
    from hbench.plugins.checks import Honesty, JsonKeys, Number

    return {"honesty": Honesty, "number": Number, "json_keys": JsonKeys}


def _make(cls: type, opts: dict[str, Any]) -> Any:
    """``cls(**opts)`` keeping only the options ``cls`` knows (an old class lacks new ones)."""
    import attrs

    names = {a.alias if hasattr(a, "alias") else a.name.lstrip("_") for a in attrs.fields(cls) if a.init}
    return cls(**{k: v for k, v in opts.items() if k in names})


def _bundled_options() -> dict[str, dict[str, Any]]:
    """Each bundled suite's checks of the changed kinds, substituted as the loader does,
    plus what the new loader reads from the prompt."""
    from hbench.suite import substitute
    from hbench.suite_toml import Problems, load_ground_truth

    out = {}
    for suite in ("hermes-brain-v1", "hermes-brain"):
        root = ROOT / "suites" / suite
        if not (root / "prompts.jsonl").is_file():
            continue
        values, _ = load_ground_truth(root / "ground_truth.json", Problems())
        for line in (root / "prompts.jsonl").read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            check = dict(row["check"])
            kind = check.pop("kind")
            if kind not in KINDS:
                continue
            esc = {"forbid"} if kind == "honesty" else set()

            def sub(v: Any, key: str) -> Any:
                if isinstance(v, str):
                    return substitute(v, values, escape=key in esc)
                if isinstance(v, list):
                    return [sub(x, key) for x in v]
                if isinstance(v, dict):
                    return {k: sub(x, key) for k, x in v.items()}
                return v

            opts = {k: sub(v, k) for k, v in check.items()}
            out[f"{suite}/{row['id']}"] = {"kind": kind, "opts": opts, "prompt": substitute(row["prompt"], values)}
    return out


def _answers() -> list[str]:
    sys.path.insert(0, str(ROOT))
    answers = [r["answer"] for r in _rows("honesty_gold.jsonl")] + [r["answer"] for r in _rows("number_gold.jsonl")]
    try:
        from tests.test_check_gold import JSON_CASES

        answers += [a for a, _, _ in JSON_CASES]
    except Exception:  # noqa: BLE001
        pass
    try:
        from benchmarks._brain_scripts import CASES

        for c in CASES:
            for steps in (c.right, c.wrong, c.follow_right, c.follow_wrong):
                said = [s["content"] for s in steps if s.get("content")]
                answers += said[-1:]
    except Exception:  # noqa: BLE001
        pass
    return list(dict.fromkeys(answers))


def accuracy(kinds: dict[str, type], new: bool) -> dict[str, tuple[int, int]]:
    """Per side: (right, total) for the honesty gold set, the number table, json cases."""
    sides: dict[str, list[int]] = {}

    def score(side: str, ok: bool) -> None:
        s = sides.setdefault(side, [0, 0])
        s[0] += ok
        s[1] += 1

    bundled = _bundled_options()
    phone = bundled.get("hermes-brain-v1/honesty-mobile-number") or bundled["hermes-brain/honesty-mobile-number"]
    for r in _rows("honesty_gold.jsonl"):
        opts = dict(phone["opts"]) if "check" not in r else {k: v for k, v in r["check"].items() if k != "kind"}
        prompt = phone["prompt"] if "check" not in r else r["question"]
        if new:
            opts = kinds["honesty"].options_from_prompt(prompt, opts)
        check = _make(kinds["honesty"], opts)
        score(f"honesty {r['label']}", check.check(r["answer"]).passed == (r["label"] == "honest"))
    for r in _rows("number_gold.jsonl"):
        check = _make(kinds["number"], {k: v for k, v in r["check"].items() if k != "kind"})
        score(f"number {r['label']}", check.check(r["answer"]).passed == (r["label"] == "right"))
    try:
        sys.path.insert(0, str(ROOT))
        from tests.test_check_gold import JSON_CASES

        check = _make(kinds["json_keys"], {"keys": ["name", "role", "extension"],
                                           "values": {"name": "Tomasz Wierzbicki", "extension": "4417"}})
        for answer, ok, _ in JSON_CASES:
            score(f"json_keys {'right' if ok else 'wrong'}", check.check(answer).passed == ok)
    except ImportError:
        pass
    return {k: (v[0], v[1]) for k, v in sides.items()}


def verdict_changes(old: dict[str, type], new: dict[str, type]) -> list[tuple[str, int, int]]:
    """Per bundled check of a changed kind: (suite/prompt, answers whose verdict changed, answers)."""
    answers = _answers()
    out = []
    for pid, spec in _bundled_options().items():
        try:
            o = _make(old[spec["kind"]], spec["opts"])
        except Exception:  # noqa: BLE001 - an option the old class refused
            o = None
        n = _make(new[spec["kind"]], new[spec["kind"]].options_from_prompt(spec["prompt"], spec["opts"])
                  if hasattr(new[spec["kind"]], "options_from_prompt") else spec["opts"])
        changed = sum(1 for a in answers if o is None or o.check(a).passed != n.check(a).passed)
        out.append((pid, changed, len(answers)))
    return out


def _line(sides: dict[str, tuple[int, int]]) -> str:
    return "\n".join(f"  {k:18s} {a:3d}/{n:<3d} {a / n:6.1%}" for k, (a, n) in sorted(sides.items()))


#: hostile answers for --speed: each repeated up to the size asked
FLOODS = {"digits": "1 ", "nots": "not ", "think": "<think>", "braces": "{", "brackets": "[",
          "number words": "five ", "parens": "(", "dollars": "$1 or ", "nested json": '{"a":'}


def speed(size: int) -> list[tuple[str, str, float]]:
    """Seconds each changed check takes on each hostile answer of ``size`` characters."""
    import time

    from hbench.plugins.checks import Honesty, JsonKeys, Number

    checks = [Honesty(asks=["phone", "email", "address", "number"], quantity=["budget"]), Number(value=42000),
              JsonKeys(keys=["a"])]
    out = []
    for name, unit in FLOODS.items():
        text = (unit * (size // len(unit) + 1))[:size]
        for c in checks:
            t = time.perf_counter()
            c.check(text)
            out.append((name, type(c).name, time.perf_counter() - t))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.check_gold")
    ap.add_argument("--against", metavar="REV", help="also measure the checks at this git revision")
    ap.add_argument("--speed", type=int, metavar="CHARS", nargs="?", const=1024 * 1024,
                    help="time the checks on hostile answers of this size (default 1 MiB)")
    args = ap.parse_args(argv)
    if args.speed:
        rows = speed(args.speed)
        for name, kind, secs in rows:
            print(f"  {name:14s} {kind:10s} {secs:6.2f} s")
        worst = max(rows, key=lambda r: r[2])
        print(f"slowest: {worst[1]} on {worst[0]}, {worst[2]:.2f} s for {args.speed:,} characters")
        return
    new = new_kinds()
    print("checks in this tree:")
    print(_line(accuracy(new, new=True)))
    if args.against:
        old = old_kinds(args.against)
        print(f"checks at {args.against}:")
        print(_line(accuracy(old, new=False)))
        changes = verdict_changes(old, new)
        moved = [c for c in changes if c[1]]
        print(f"bundled checks of the changed kinds: {len(changes)}; verdict changed on the test answers: {len(moved)}")
        for pid, changed, total in changes:
            print(f"  {pid:45s} {changed:3d} of {total} answers")


if __name__ == "__main__":
    main()
