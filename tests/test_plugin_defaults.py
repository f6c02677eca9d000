"""Plugin-declared defaults (issue 16, "core knows no plugin by name"): which agent, lane
kind and suite are used when none is named is said by the plugin that registers them
(``register(obj, default=True)``), not by a name written in core."""

from __future__ import annotations

import attrs
import pytest
from structlog.testing import capture_logs

from hbench import hookimpl
from hbench.logging import get_logger
from hbench.lanes import adhoc_lane, lookup_lane, with_kind
from hbench.models import Attempt, LaneSpec
from hbench.plugin_manager import Registry, get_plugins


def test_builtins_mark_the_defaults():
    reg = get_plugins().registries
    assert reg.agents.default() == "builtin"
    assert reg.lane_kinds.default() == "openai"
    assert reg.suites.default() == "hermes-brain"
    assert reg.checks.default() is None  # nothing to default to: a prompt always names its check
    assert reg.lane_kinds.get(None) is reg.lane_kinds.get("openai")


def test_registry_default_resolves_none():
    reg = Registry("agent")
    assert reg.default() is None and None not in reg
    with pytest.raises(LookupError, match="no agent is marked default by a plugin"):
        reg.get(None)
    reg.add("plain", "P", "x")
    reg.add("loop", "L", "x", default=True)
    assert reg.default() == "loop" and None in reg
    assert reg.resolve(None) == "loop" and reg.resolve("plain") == "plain"
    assert reg.get(None) == "L" and reg.get("plain") == "P"


def test_second_default_is_a_warning_and_the_first_wins():
    reg = Registry("agent")
    reg.add("builtin", "B", "hbench.plugins.agents", default=True)
    get_logger()  # configured before capture_logs replaces the processors
    with capture_logs() as logs:
        reg.add("mine", "M", "third-party", default=True)
    assert reg.default() == "builtin"
    assert reg.get("mine") == "M"  # still there, usable by name
    (e,) = [e for e in logs if e["event"] == "plugin.second_default"]
    assert "builtin" in e["kept"] and "hbench.plugins.agents" in e["kept"]
    assert "mine" in e["ignored"] and "third-party" in e["ignored"]


def test_a_third_party_default_does_not_replace_the_builtin(hbench_plugin):
    class Greedy:
        @hookimpl
        def hbench_register_agents(self, register):
            register(_Agent(), default=True)

    get_logger()
    with capture_logs() as logs:
        hbench_plugin(Greedy(), name="greedy")
        reg = get_plugins().registries
    assert reg.agents.default() == "builtin"
    assert "greedy-agent" in reg.agents
    assert get_plugins().infos["greedy"].status == "ok"  # a warning, not a broken plugin
    assert any(e["event"] == "plugin.second_default" and "greedy" in e["ignored"] for e in logs)


@attrs.define
class _Agent:
    name = "greedy-agent"

    def run_attempt(self, ctx):  # noqa: ANN001, ANN201
        raise NotImplementedError


def test_a_plugin_lane_without_kind_gets_the_default_kind_by_name(hbench_plugin):
    class Lanes:
        @hookimpl
        def hbench_register_lanes(self, register):
            register(LaneSpec(name="kindless", base_url="http://127.0.0.1:9/v1"))

    hbench_plugin(Lanes(), name="kindless-lanes")
    assert get_plugins().registries.lanes.get("kindless").kind == "openai"


def test_lanes_without_kind_name_the_default_where_registries_are_at_hand():
    kinds = get_plugins().registries.lane_kinds
    assert LaneSpec(name="x").kind is None
    spec = adhoc_lane("http://127.0.0.1:9", "m")
    assert spec.kind is None and spec.base_url == "http://127.0.0.1:9/v1"
    assert with_kind(spec, kinds).kind == "openai"
    assert with_kind(attrs.evolve(spec, kind="vllm"), kinds).kind == "vllm"
    found, kind = lookup_lane("m", {"m": spec}, kinds)
    assert found.kind == "openai" and kind is kinds.get("openai")
    assert with_kind(spec, Registry("lane kind")).kind is None  # no default: left for the caller's message


def test_attempt_agent_is_what_the_agent_says():
    assert Attempt(lane="l", prompt_id="p", n=1).agent is None
    assert Attempt(lane="l", prompt_id="p", n=1, agent="x").agent == "x"
