"""Readiness that proves generation (issue 21): after a kind says ready, a 1-token
completion must come back before the lane counts as ready, for every kind; the seconds
from start to that canary (``ready_s``) and the resting memory are recorded.

Real HTTP on 127.0.0.1: hbench.testing's scripted server and tests/lane_imitations.py,
in-process and as managed processes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from lane_imitations import LaneImitation

from hbench.errors import LaneError
from hbench.lanes import CANARY_HEADER, open_lane
from hbench.models import LaneSpec
from hbench.plugin_manager import get_registries
from hbench.testing import ScriptedServer

IMITATION = str(Path(__file__).with_name("lane_imitations.py"))


def kind(name: str):
    return get_registries().lane_kinds.get(name)


def _canaries(srv: LaneImitation) -> list[dict]:
    return [r for r in srv.requests if r["method"] == "POST"
            and any(k.lower() == CANARY_HEADER.lower() for k in r["headers"])]


@pytest.mark.parametrize("kind_name", ["openai", "llamacpp", "vllm", "nim", "ollama"])
def test_every_kind_sends_one_canary_before_the_lane_is_ready(kind_name, tmp_path):
    with LaneImitation(kind=kind_name, model="m1") as srv:
        spec = LaneSpec(name="t", kind=kind_name, base_url=srv.base_url, model="m1")
        with open_lane(spec, kind(kind_name), out_dir=tmp_path) as running:
            canaries = _canaries(srv)
            assert len(canaries) == 1
            body = canaries[0]["body"]
            assert body["max_tokens"] == 1 and body["model"] == "m1" and body["stream"] is False
            assert running.ready_s is not None and 0 <= running.ready_s < 5
            assert running.readiness()["ready_s"] == round(running.ready_s, 3)


def test_a_wedged_engine_behind_a_healthy_front_end_is_not_ready(tmp_path):
    """/health 200 and /v1/models 200, but generation never answers: a lane error that says so."""
    with LaneImitation(kind="llamacpp", model="m1", wedged=True) as srv:
        spec = LaneSpec(name="wedge", kind="llamacpp", base_url=srv.base_url, model="m1", ready_timeout_s=1.5)
        t0 = time.monotonic()
        with pytest.raises(LaneError) as err:
            with open_lane(spec, kind("llamacpp"), out_dir=tmp_path):
                pytest.fail("a wedged lane counted as ready")
        assert time.monotonic() - t0 < 10
    msg = str(err.value)
    assert "answered ready, but a 1-token completion failed" in msg and "no answer in time" in msg


def test_a_refused_canary_fails_at_once_with_the_servers_reason(tmp_path):
    """404 model not found is final: no waiting out the timeout, and the reason is the server's."""
    with ScriptedServer(model="real-id", strict_model=True) as srv:
        spec = LaneSpec(name="typo", kind="openai", base_url=srv.url, model="real-id")
        # served_model check passes (the id is listed); the typo is in what requests send
        spec.model = "reall-id"
        t0 = time.monotonic()
        with pytest.raises(LaneError) as err:
            with open_lane(spec, kind("openai"), out_dir=tmp_path):
                pass
        assert time.monotonic() - t0 < 3
        assert srv.canaries == 1
    assert "HTTP 404: model 'reall-id' not found" in str(err.value)


def test_a_canary_that_errors_is_asked_again_until_the_deadline(tmp_path):
    with ScriptedServer(model="m") as srv:
        srv.canary_fault = (503, "engine busy warming up")
        spec = LaneSpec(name="busy", kind="openai", base_url=srv.url, model="m", ready_timeout_s=1.2)
        with pytest.raises(LaneError, match="HTTP 503: engine busy warming up"):
            with open_lane(spec, kind("openai"), out_dir=tmp_path):
                pass
        assert srv.canaries >= 2  # retried, not failed at the first 503
        srv.canary_fault = None
        with open_lane(spec, kind("openai"), out_dir=tmp_path) as running:
            assert running.ready_s is not None
        assert srv.chat_requests == []  # the canary is no attempt's request


def test_managed_lane_records_ready_s_from_start_and_resting_memory(tmp_path):
    spec = LaneSpec(name="managed", kind="llamacpp", ready_timeout_s=20, stop_grace_s=1.0,
                    memory_return_timeout_s=2.0,
                    start=[sys.executable, IMITATION, "--kind", "llamacpp", "--port", "{port}", "--load-s", "0.6"])
    statuses: list[str] = []
    with open_lane(spec, kind("llamacpp"), out_dir=tmp_path, headroom_gb=0.0, on_status=statuses.append) as running:
        assert running.ready_s is not None and running.ready_s >= 0.6  # includes the load
        assert running.resting_memory_gb is not None and 0.001 < running.resting_memory_gb < 2
        assert running.resting_memory_source == "server process tree RSS"
    assert "generation canary (1 token)" in statuses


def test_managed_wedged_lane_fails_with_the_log_tail_and_is_stopped(tmp_path):
    spec = LaneSpec(name="wedged", kind="llamacpp", ready_timeout_s=1.5, stop_grace_s=1.0,
                    memory_return_timeout_s=2.0,
                    start=[sys.executable, IMITATION, "--kind", "llamacpp", "--port", "{port}", "--wedged"])
    with pytest.raises(LaneError) as err:
        with open_lane(spec, kind("llamacpp"), out_dir=tmp_path, headroom_gb=0.0):
            pytest.fail("a wedged lane counted as ready")
    assert "1-token completion failed" in str(err.value) and "imitation llamacpp starting" in str(err.value)
