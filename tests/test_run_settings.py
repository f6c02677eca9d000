"""One settings object (issue 16): :func:`hbench.run_settings.resolve` gives a run's and a
lane's settings (CLI > hbench.toml [run] > suite > built-in default; a lane's own agent,
max_tokens and temperature win), and the journal's lane fingerprint comes from it, the
same digest journals written before held."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import attrs
import pytest

from hbench.config import RunDefaults
from hbench.errors import BadInput
from hbench.journal import iter_records, lane_fingerprint
from hbench.models import LaneSpec, Suite, SuiteDefaults
from hbench.plugin_manager import get_registries
from hbench.run_settings import RunOptions, Settings, resolve
from hbench.runner import run
from test_runner import opts, steady_scripts

SUITE = Suite(name="s", version="1", description="", system_prompt="", prompts=(), ground_truth={}, path="/s",
              fixtures_dir=None, sha256="0" * 64, fixtures_sha256="0" * 64,
              defaults=SuiteDefaults(runs=5, timeout_s=360.0, max_turns=12, max_tokens=1024, temperature=0.0))
QWEN = LaneSpec(name="qwen", kind="vllm", base_url="http://127.0.0.1:8000/v1", model="Qwen/Qwen3-8B",
                start=["vllm", "serve", "Qwen/Qwen3-8B"], temperature=0.2, max_tokens=512, node="spark2", tags=["x"])
#: lane_fingerprint(QWEN, the limits below) as hbench wrote it before issue 16 (commit f1f2328)
QWEN_FINGERPRINT = "df4eb2fc0c3b250d113b5f258c5936415cc6fdd9852d9d62b7d6eee3623d0acc"


def test_precedence_cli_then_toml_then_suite_then_default() -> None:
    s = resolve(RunOptions(), RunDefaults(), SUITE)
    assert (s.runs, s.timeout_s, s.max_turns, s.max_tokens, s.temperature) == (5, 360.0, 12, 1024, 0.0)
    s = resolve(RunOptions(), RunDefaults(runs=3, timeout_s=90, max_turns=6), SUITE)
    assert (s.runs, s.timeout_s, s.max_turns) == (3, 90.0, 6)
    s = resolve(RunOptions(runs=2, timeout_s=30, max_turns=4, concurrency=3), RunDefaults(runs=3, timeout_s=90), SUITE)
    assert (s.runs, s.timeout_s, s.max_turns, s.concurrency) == (2, 30.0, 4, 3)
    # without the suite the limits it gives are not known yet
    assert resolve(RunOptions(), RunDefaults()).timeout_s is None


def test_a_lanes_own_agent_and_sampling_win() -> None:
    lane = LaneSpec(name="l", base_url="http://h/v1", agent="hermes", max_tokens=256, temperature=0.7)
    s = resolve(RunOptions(agent="builtin-mcp"), RunDefaults(), SUITE, lane)
    assert (s.agent, s.max_tokens, s.temperature) == ("hermes", 256, 0.7)
    s = resolve(RunOptions(agent="builtin-mcp"), RunDefaults(), SUITE, LaneSpec(name="m", base_url="http://h/v1"))
    assert (s.agent, s.max_tokens, s.temperature) == ("builtin-mcp", 1024, 0.0)


def test_the_defaults_come_from_the_plugins_that_marked_them() -> None:
    reg = get_registries()
    s = resolve(RunOptions(), attrs.evolve(RunDefaults(), suite=None, agent=None), registries=reg)
    assert s.suite == reg.suites.default() and s.agent == reg.agents.default()
    assert s.suite is not None and s.agent is not None
    s = resolve(RunOptions(suite="mine", agent="mine"), RunDefaults(), registries=reg)
    assert (s.suite, s.agent) == ("mine", "mine")


def test_bad_flags_are_named() -> None:
    with pytest.raises(BadInput) as exc:
        resolve(RunOptions(runs=0, concurrency=0, shard="0/2", adaptive=True), RunDefaults())
    assert exc.value.problems == ["--runs 0: must be 1 or more", "--concurrency 0: must be 1 or more",
                                  "--shard with --adaptive: adaptive stopping needs every attempt of a prompt in "
                                  "one run; drop --adaptive (or run unsharded)"]


def test_the_fingerprint_comes_from_the_settings_and_is_the_one_old_journals_hold() -> None:
    s = resolve(RunOptions(timeout_s=60, max_turns=8, agent="builtin"), RunDefaults(), SUITE, QWEN)
    assert isinstance(s, Settings)
    assert s.limits() == {"agent": "builtin", "timeout_s": 60.0, "max_turns": 8, "max_tokens": 512,
                          "temperature": 0.2}
    assert lane_fingerprint(QWEN, s) == lane_fingerprint(QWEN, s.limits()) == QWEN_FINGERPRINT
    # what does not shape an attempt stays out of it
    assert lane_fingerprint(attrs.evolve(QWEN, node=None, tags=[]), s) == QWEN_FINGERPRINT
    assert lane_fingerprint(QWEN, attrs.evolve(s, runs=9, concurrency=4)) == QWEN_FINGERPRINT


def _fingerprint_before_issue_16(spec: LaneSpec, limits: dict[str, Any]) -> str:
    """hbench.journal.lane_fingerprint as it was (commit f1f2328), over the fields a
    LaneSpec had then."""
    old_fields = {"name", "kind", "base_url", "model", "start", "options", "context_length", "temperature",
                  "top_p", "max_tokens", "seed", "stream_tools", "agent", "agent_options", "stop_grace_s",
                  "memory_return_timeout_s"}
    lane = attrs.asdict(spec)
    cfg = {k: lane[k] for k in old_fields if k in lane}
    return hashlib.sha256(json.dumps({"lane": cfg, "settings": limits}, sort_keys=True, default=str)
                          .encode()).hexdigest()


def test_a_journal_of_the_old_runner_resumes(scripted_server: Any, tmp_path: Path) -> None:
    """The lane record this runner writes is the one the runner before issue 16 wrote for
    the same lane and settings, so its journals resume (here: extended by a second run)."""
    srv = scripted_server(steady_scripts())
    out = tmp_path / "out"
    assert run(opts(srv, out, runs=1, timeout_s=120, max_turns=12)).exit_code == 0
    (rec,) = [r for _, r in iter_records(out / "journal.jsonl") if r["type"] == "lane"]
    spec = LaneSpec(name="scripted-model", kind="openai", base_url=srv.url, model="scripted-model")
    want = _fingerprint_before_issue_16(spec, {"agent": "builtin", "timeout_s": 120.0, "max_turns": 12,
                                               "max_tokens": 1024, "temperature": 0.0})
    assert rec["fingerprint"] == want
    result = run(opts(srv, out, runs=2, timeout_s=120, max_turns=12, resume=True))
    assert result.exit_code == 0 and result.scorecards[0].runs == 2


def test_no_suite_named_and_no_default_is_bad_input_naming_the_fix(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from hbench.plugin_manager import Registry
    from hbench.runner import Runner

    monkeypatch.setattr(Registry, "default", lambda self: None)  # no plugin marked a default
    with pytest.raises(BadInput, match=r"no suite to run: pass --suite NAME\|FOLDER"):
        Runner(RunOptions(lane_url="http://127.0.0.1:9/v1", model="m", out=str(tmp_path / "out"))).run()
    assert not (tmp_path / "out").exists()
