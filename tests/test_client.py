"""hbench.client: pure parsing helpers (unit + hypothesis), then the ChatClient against
the scripted server over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import os
import threading
import time

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hbench.client import (
    AttemptCancelled,
    AttemptTimeout,
    ChatClient,
    ChatResponse,
    NormalisedToolCall,
    RequestRejected,
    ServerReplyError,
    SSEEvent,
    SSEParser,
    StreamAccumulator,
    TransportError,
    normalise_tool_calls,
    parse_arguments,
    parse_retry_after,
    parse_sse,
)
from hbench.testing import Fault, Turn, answer, call

# Upper bounds on elapsed time carry slack for a loaded 2-core machine; each bound still
# sits far below what the broken behaviour would take (a 10-60 s stall or wait).
SLACK = float(os.environ.get("HBENCH_TIMING_SLACK", "0.75"))

TOOLS = [{"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
         for n in ("read_file", "list_dir", "grep")]


def user(text: str) -> list[dict]:
    return [{"role": "system", "content": "sys"}, {"role": "user", "content": text}]


def faulty(*kinds: str, content: str = "the answer", tool: bool = False, **opts) -> Turn:
    tcs = call("read_file", path="notes.md").tool_calls if tool else ()
    return Turn(content=None if tool else content, tool_calls=tcs, faults=tuple(Fault(k, **opts) for k in kinds))


# =========================================================================== SSE


def test_sse_basic_comments_multiline_and_fields() -> None:
    raw = (b": keep-alive\n\ndata: {\"a\": 1}\n\nevent: ping\nid: 7\ndata: x\ndata: y\n\n"
           b"data:nospace\r\n\r\ndata: [DONE]\n\n")
    assert parse_sse(raw) == [SSEEvent('{"a": 1}'), SSEEvent("x\ny", event="ping", id="7"),
                              SSEEvent("nospace", id="7"), SSEEvent("[DONE]", id="7")]


def test_sse_event_without_blank_line_at_eof_is_dropped() -> None:
    assert parse_sse(b"data: one\n\ndata: two") == [SSEEvent("one")]


def test_sse_invalid_utf8_raises() -> None:
    with pytest.raises(UnicodeDecodeError):
        parse_sse(b"data: \xff\xfe\n\n")


sse_events = st.lists(st.lists(st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=12),
                               min_size=1, max_size=3), max_size=6)


@settings(max_examples=300)
@given(events=sse_events, newline=st.sampled_from(["\n", "\r\n", "\r"]), cuts=st.lists(st.integers(0, 400), max_size=8),
       comments=st.booleans())
def test_sse_chunking_never_changes_the_events(events, newline, cuts, comments) -> None:
    text = ""
    for ev in events:
        if comments:
            text += ": c" + newline
        text += "".join(f"data: {line}{newline}" for line in ev) + newline
    data = text.encode("utf-8")
    pieces, last = [], 0
    for c in sorted(set(min(c, len(data)) for c in cuts)):
        pieces.append(data[last:c])
        last = c
    pieces.append(data[last:])
    expected = [SSEEvent("\n".join(ev)) for ev in events]
    assert parse_sse(pieces) == expected == parse_sse(data)


@given(st.binary(max_size=300))
def test_sse_parser_on_any_bytes_yields_events_or_a_unicode_error(blob: bytes) -> None:
    p = SSEParser()
    try:
        out = p.feed(blob) + p.close()
    except UnicodeDecodeError:
        return
    assert all(isinstance(e, SSEEvent) for e in out)


# =========================================================================== arguments


def test_parse_arguments_tolerances() -> None:
    assert parse_arguments('{"path": "a"}') == ({"path": "a"}, '{"path": "a"}', None)
    assert parse_arguments({"path": "a"})[0] == {"path": "a"}
    assert parse_arguments("")[0] == {} and parse_arguments(None)[0] == {} and parse_arguments("null")[0] == {}
    assert parse_arguments(json.dumps(json.dumps({"p": 1})))[0] == {"p": 1}  # encoded twice
    args, raw, err = parse_arguments('{"path": "a"', "read_file")
    assert args is None and raw == '{"path": "a"' and "read_file" in err and "not valid JSON" in err
    args, _, err = parse_arguments("[1, 2]", "grep")
    assert args is None and "got an array" in err
    assert parse_arguments(7)[2] and parse_arguments(7)[0] is None


json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
json_values = st.recursive(json_scalars, lambda v: st.lists(v, max_size=3) | st.dictionaries(st.text(max_size=5), v, max_size=3),
                           max_leaves=10)


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_parse_arguments_round_trips_objects(d: dict) -> None:
    assert parse_arguments(json.dumps(d))[0] == d
    assert parse_arguments(d)[0] == d


@given(st.one_of(st.text(), json_values))
def test_parse_arguments_never_raises_and_is_consistent(value) -> None:
    args, raw, err = parse_arguments(value)
    assert isinstance(raw, str)
    assert (args is None) == (err is not None)
    assert args is None or isinstance(args, dict)


# =========================================================================== normaliser


def test_structured_calls_missing_and_duplicate_ids_are_synthesised() -> None:
    raw = [{"function": {"name": "read_file", "arguments": '{"path": "a"}'}},
           {"id": "x", "function": {"name": "grep", "arguments": {"pattern": "b"}}},
           {"id": "x", "function": {"name": "list_dir", "arguments": ""}}]
    calls, content, warnings = normalise_tool_calls(raw, "", None)
    ids = [c.id for c in calls]
    assert len(set(ids)) == 3 and ids[1] == "x" and all(ids)
    assert [c.arguments for c in calls] == [{"path": "a"}, {"pattern": "b"}, {}]
    assert any("no id" in w for w in warnings) and any("as an object" in w for w in warnings)


def test_tool_call_tags_in_content_are_extracted() -> None:
    content = ('Let me look.\n<tool_call>\n{"name": "read_file", "arguments": {"path": "a.md"}}\n</tool_call>\n'
               '<tool_call>{"name": "grep", "arguments": {"pattern": "x"}</tool_call>\n'  # malformed
               '<tool_call>{"function": {"name": "list_dir", "parameters": {"path": "."}}}')  # unclosed
    calls, rest, _ = normalise_tool_calls([], content, None)
    assert [(c.name, c.arguments, c.source) for c in calls] == [
        ("read_file", {"path": "a.md"}, "content"), ("grep", None, "content"), ("list_dir", {"path": "."}, "content")]
    assert calls[1].format_error and "grep" in calls[1].format_error
    assert rest == "Let me look."


def test_leaked_later_calls_join_the_structured_ones() -> None:
    raw = [{"id": "a", "function": {"name": "read_file", "arguments": "{}"}}]
    calls, rest, _ = normalise_tool_calls(raw, '<tool_call>{"name": "grep", "arguments": {}}</tool_call>', None)
    assert [c.name for c in calls] == ["read_file", "grep"] and rest == ""


def test_fenced_json_counts_only_for_offered_tools_and_no_structured_calls() -> None:
    fenced = 'Sure:\n```json\n{"name": "read_file", "arguments": {"path": "a"}}\n```'
    calls, rest, _ = normalise_tool_calls([], fenced, ["read_file"])
    assert [c.name for c in calls] == ["read_file"] and rest == "Sure:"
    # an answer that happens to hold JSON with a name is an answer
    answer_json = '```json\n{"name": "Ada", "arguments": 3}\n```'
    assert normalise_tool_calls([], answer_json, ["read_file"])[0] == []
    assert normalise_tool_calls([], fenced, None)[0] == []  # no tools offered


def test_nameless_call_is_a_format_error() -> None:
    calls, _, _ = normalise_tool_calls([{"function": {"arguments": "{}"}}], "", None)
    assert calls[0].format_error and calls[0].arguments is None


@settings(max_examples=300)
@given(raw=st.lists(json_values, max_size=4), content=st.text(max_size=200) | st.sampled_from([
    "<tool_call>", "<tool_call>{</tool_call>", "```json\n{\"name\": \"grep\"}\n```", "<tool_call>[1]</tool_call>"]))
def test_normaliser_never_raises(raw, content) -> None:
    calls, rest, warnings = normalise_tool_calls(raw, content, ["grep"])
    for c in calls:
        assert isinstance(c, NormalisedToolCall) and c.id
        assert (c.arguments is None) == (c.format_error is not None)
        wire = c.to_wire()
        assert isinstance(json.loads(wire["function"]["arguments"]), dict)  # always replayable


def test_malformed_call_is_never_replayed_verbatim() -> None:
    reply = ChatResponse(tool_calls=[NormalisedToolCall("id1", "grep", None, '{"pattern": "x', "bad json")])
    msg = reply.assistant_message()
    assert msg["content"] == "" and msg["tool_calls"][0]["function"]["arguments"] == "{}"
    assert reply.format_errors == 1


# =========================================================================== stream assembly


def test_accumulator_merges_by_index_interleaved() -> None:
    acc = StreamAccumulator()

    def tc(**d):
        return {"choices": [{"index": 0, "delta": {"tool_calls": [d]}, "finish_reason": None}]}

    acc.add(tc(index=0, id="a", function={"name": "read_file", "arguments": ""}))
    acc.add(tc(index=1, id="b", function={"name": "grep", "arguments": '{"pat'}))
    acc.add(tc(index=0, function={"arguments": '{"path": '}))
    acc.add(tc(index=1, function={"arguments": 'tern": "x"}'}))
    acc.add(tc(index=0, function={"arguments": '"a"}'}))
    acc.add({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}], "timings": {"predicted_n": 3}})
    acc.add({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3}})
    calls = [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in acc.raw_tool_calls()]
    assert calls == [("a", "read_file", {"path": "a"}), ("b", "grep", {"pattern": "x"})]
    assert acc.finish_reason == "tool_calls" and acc.usage["completion_tokens"] == 3 and acc.timings


def test_accumulator_without_indices() -> None:
    acc = StreamAccumulator()
    acc.add({"choices": [{"delta": {"tool_calls": [{"id": "a", "function": {"name": "x", "arguments": "{"}}]}}]})
    acc.add({"choices": [{"delta": {"tool_calls": [{"function": {"arguments": "}"}}]}}]})
    acc.add({"choices": [{"delta": {"tool_calls": [{"id": "b", "function": {"name": "y", "arguments": "{}"}}]}}]})
    assert [(c["id"], c["function"]["arguments"]) for c in acc.raw_tool_calls()] == [("a", "{}"), ("b", "{}")]


def test_retry_after_parsing() -> None:
    assert parse_retry_after("3") == 3.0 and parse_retry_after("0.5") == 0.5
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None and parse_retry_after("-4") == 0.0


# =========================================================================== parsing (MockTransport)


def mock_client(status: int, body: bytes, ctype: str) -> ChatClient:
    def handler(_req: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers={"content-type": ctype})
    return ChatClient("http://mock/v1", transport=httpx.MockTransport(handler), retries=0)


def test_json_answer_to_a_stream_request_is_read_as_json() -> None:
    body = json.dumps({"model": "m", "choices": [{"message": {"content": [{"type": "text", "text": "hi"}],
                                                               "function_call": {"name": "grep", "arguments": "{}"}},
                                                   "finish_reason": "function_call"}]}).encode()
    r = mock_client(200, body, "application/json").chat(user("x"), model="m", stream=True)
    assert r.content == "hi" and r.streamed is False
    assert [c.name for c in r.tool_calls] == ["grep"] and r.finish_reason == "tool_calls"


@pytest.mark.parametrize("body, ctype, needle", [
    (b'{"choices": []}', "application/json", "no choices[0].message"),
    (b'[1]', "application/json", "an array"),
    (b'{"error": {"message": "boom"}}', "application/json", "boom"),
    (b'{"choices": [{"message": {"content": 5}}]}', "application/json", "content is a number"),
    (b"<html>oops</html>", "text/html", "content type 'text/html'"),
    (b"data: {\"choices\": [{\"delta\": {\"content\": \"x\"}}]}\n\n", "text/event-stream", "without a finish_reason"),
    (b"data: {oops\n\n", "text/event-stream", "not valid JSON"),
    (b"data: {\"error\": {\"message\": \"kv cache full\"}}\n\n", "text/event-stream", "kv cache full"),
])
def test_unusable_bodies_say_why(body: bytes, ctype: str, needle: str) -> None:
    with pytest.raises(ServerReplyError) as info:
        mock_client(200, body, ctype).chat(user("x"), model="m")
    assert needle in str(info.value) and "\n" not in str(info.value)


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()),
       ctype=st.sampled_from(["application/json", "text/event-stream", "text/plain", ""]))
def test_any_body_is_a_reply_or_a_server_reply_error(body: bytes, ctype: str) -> None:
    try:
        r = mock_client(200, body, ctype).chat(user("x"), model="m", tools=TOOLS)
    except ServerReplyError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(r, ChatResponse)


# =========================================================================== over HTTP


@pytest.fixture
def client_for():
    made: list[ChatClient] = []

    def make(srv, **kw) -> ChatClient:
        kw.setdefault("backoff_s", 0.01)
        c = ChatClient(srv.url, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.mark.parametrize("stream", [True, False])
def test_tool_round_trip(scripted_server, client_for, stream: bool) -> None:
    srv = scripted_server({"budget": [call("read_file", path="notes.md"),
                                      Turn(content="It is $42,000.", reasoning="the file says so")]},
                          timings=True, model="lane-model")
    c = client_for(srv)
    msgs = user("What is the budget?")
    r = c.chat(msgs, model="lane-model", tools=TOOLS, stream=stream)
    assert [(t.name, t.arguments) for t in r.tool_calls] == [("read_file", {"path": "notes.md"})]
    assert r.finish_reason == "tool_calls" and r.prompt_tokens > 0 and r.completion_tokens > 0
    assert r.server_timings["predicted_n"] == r.completion_tokens and r.model == "lane-model"
    assert (r.ttft_ms is not None) == stream and r.streamed == stream and r.warnings == []
    msgs += [r.assistant_message(), {"role": "tool", "tool_call_id": r.tool_calls[0].id, "content": "42,000"}]
    r2 = c.chat(msgs, model="lane-model", tools=TOOLS, stream=stream)
    assert (r2.content, r2.reasoning, r2.finish_reason) == ("It is $42,000.", "the file says so", "stop")
    sent = srv.chat_requests
    assert [(q.attempt, q.turn) for q in sent] == [(1, 0), (1, 1)]
    assert sent[0].body["stream"] is stream and sent[0].body["tools"] == TOOLS
    assert (sent[0].body.get("stream_options") == {"include_usage": True}) == stream
    assert sent[1].body["messages"][2]["content"] == ""  # never null when replayed
    assert "Authorization" not in sent[0].headers


@pytest.mark.parametrize("kind", ["args_object", "calls_in_content", "fenced_calls", "missing_ids", "stop_finish",
                                  "sse_comments"])
def test_deviant_tool_calls_normalise_the_same_streamed_or_not(scripted_server, client_for, kind: str) -> None:
    srv = scripted_server({"p": [faulty(kind, tool=True)]})
    c = client_for(srv)
    for stream in (True, False):
        r = c.chat(user("p"), model="scripted-model", tools=TOOLS, stream=stream)
        assert [(t.name, t.arguments, t.format_error) for t in r.tool_calls] == [("read_file", {"path": "notes.md"}, None)]
        assert r.finish_reason == "tool_calls" and r.tool_calls[0].id and r.content == ""
        if kind != "sse_comments":
            assert r.warnings, kind


def test_malformed_arguments_are_a_format_error(scripted_server, client_for) -> None:
    srv = scripted_server({"p": [faulty("malformed_args", tool=True)]})
    for stream in (True, False):
        r = client_for(srv).chat(user("p"), model="scripted-model", tools=TOOLS, stream=stream)
        (tc,) = r.tool_calls
        assert tc.arguments is None and "not valid JSON" in tc.format_error and r.format_errors == 1
        assert r.assistant_message()["tool_calls"][0]["function"]["arguments"] == "{}"
        assert tc.raw_arguments and tc.raw_arguments != "{}"


def test_ten_thousand_arguments(scripted_server, client_for) -> None:
    srv = scripted_server({"p": [faulty("many_args", tool=True)]})
    r = client_for(srv).chat(user("p"), model="scripted-model", tools=TOOLS)
    assert len(r.tool_calls[0].arguments) == 10_001


def test_ttft_is_the_first_useful_chunk(scripted_server, client_for) -> None:
    srv = scripted_server({"p": [Turn(tokens=5)]}, latency_s=0.1, token_latency_s=0.05)
    r = client_for(srv).chat(user("p"), model="scripted-model")
    # the empty role chunk arrives at ~100 ms; the first token at ~150 ms
    assert 140 <= r.ttft_ms <= 400, r.ttft_ms
    assert len(r.chunk_times_s) == 5 and r.completion_tokens == 5


def test_usage_missing_is_none(scripted_server, client_for) -> None:
    srv = scripted_server({"p": [faulty("no_usage")]})
    r = client_for(srv).chat(user("p"), model="scripted-model")
    assert r.prompt_tokens is None and r.completion_tokens is None and r.content == "the answer"


# --------------------------------------------------------------------------- retries


def test_5xx_is_retried_then_succeeds(scripted_server, client_for) -> None:
    srv = scripted_server({"p": [faulty("http", status=502, times=2)]})
    r = client_for(srv, retries=3).chat(user("p"), model="scripted-model")
    assert r.content == "the answer" and r.tries == 3 and len(srv.chat_requests) == 3


@pytest.mark.parametrize("status", [500, 502, 503])
def test_persistent_5xx_is_a_transport_error_after_bounded_tries(scripted_server, client_for, status: int) -> None:
    srv = scripted_server({"p": [faulty("http", status=status)]})
    with pytest.raises(TransportError) as info:
        client_for(srv, retries=2).chat(user("p"), model="scripted-model")
    assert info.value.status == status and info.value.tries == 3 and len(srv.chat_requests) == 3
    assert f"HTTP {status}" in str(info.value) and "gave up after 3 tries" in str(info.value)


def test_429_honours_retry_after_capped(scripted_server, client_for) -> None:
    srv = scripted_server({"p": [faulty("http", status=429, retry_after_s=60, times=1)]})
    c = client_for(srv, retry_after_cap_s=0.2)
    t0 = time.monotonic()
    assert c.chat(user("p"), model="scripted-model").content == "the answer"
    assert 0.18 <= time.monotonic() - t0 < 0.5 + SLACK  # the cap (0.2 s), not the server's 60 s


def test_429_whose_wait_outlasts_the_deadline_fails_fast(scripted_server, client_for) -> None:
    srv = scripted_server({"p": [faulty("http", status=429, retry_after_s=30)]})
    t0 = time.monotonic()
    with pytest.raises(TransportError, match="no time left"):
        client_for(srv, retry_after_cap_s=60).chat(user("p"), model="scripted-model", deadline=time.monotonic() + 2)
    assert time.monotonic() - t0 < 0.5 + SLACK and len(srv.chat_requests) == 1


def test_429_wait_is_honoured(scripted_server, client_for) -> None:
    srv = scripted_server({"p": [faulty("http", status=429, retry_after_s=0.3, times=1)]})
    t0 = time.monotonic()
    r = client_for(srv).chat(user("p"), model="scripted-model")
    assert time.monotonic() - t0 >= 0.3 and r.tries == 2
    gap = srv.chat_requests[1].t_start - srv.chat_requests[0].t_start
    assert gap >= 0.3


def test_dropped_connection_is_retried(scripted_server, client_for) -> None:
    srv = scripted_server({"once": [faulty("drop", times=1, content="a b c d e f g")],
                           "always": [faulty("drop", content="a b c d e f g")]})
    c = client_for(srv, retries=2)
    for stream in (True, False):
        srv.set_scripts({"once": [faulty("drop", times=1, content="a b c d e f g")],
                         "always": [faulty("drop", content="a b c d e f g")]})
        assert c.chat(user("once"), model="scripted-model", stream=stream).content == "a b c d e f g"
        with pytest.raises(TransportError, match="mid-answer"):
            c.chat(user("always"), model="scripted-model", stream=stream)


def test_connection_refused_is_a_transport_error() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    c = ChatClient(f"http://127.0.0.1:{port}/v1", api_key="sk-canary-refused", retries=2, backoff_s=0.01, lane="l1")
    with pytest.raises(TransportError) as info:
        c.chat(user("p"), model="m")
    msg = str(info.value)
    assert "lane 'l1'" in msg and "gave up after 3 tries" in msg and "sk-canary" not in msg
    assert "sk-canary" not in repr(c) and "***" in repr(c)


# --------------------------------------------------------------------------- deadline and cancel


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("kind", ["stall", "stall_mid_stream"])
def test_deadline_closes_a_stalled_request(scripted_server, client_for, kind: str, stream: bool) -> None:
    srv = scripted_server({"p": [faulty(kind, content="a b c d e f")]})
    c = client_for(srv)
    c.chat(user("warm"), model="scripted-model")  # a kept-alive connection: the stall happens on reuse
    t0 = time.monotonic()
    with pytest.raises(AttemptTimeout):
        c.chat(user("p"), model="scripted-model", stream=stream, deadline=time.monotonic() + 0.4)
    elapsed = time.monotonic() - t0
    assert 0.38 <= elapsed < 0.9 + SLACK, elapsed
    assert srv.wait_for(lambda rs: rs[-1].t_end is not None, timeout=2)
    assert srv.chat_requests[-1].disconnected  # the server saw the request closed
    assert c.chat(user("next"), model="scripted-model").content == "OK."  # and the next prompt runs


def test_deadline_hits_a_stall_that_starts_late(scripted_server, client_for) -> None:
    """Tokens flow for ~0.5 s, then stall: a per-read timeout alone would fire ~0.5 s late."""
    srv = scripted_server({"p": [Turn(tokens=50, faults=(Fault("stall_mid_stream", after_chunks=6),))]},
                          token_latency_s=0.1)
    t0 = time.monotonic()
    with pytest.raises(AttemptTimeout):
        client_for(srv).chat(user("p"), model="scripted-model", deadline=time.monotonic() + 1.0)
    assert 0.98 <= time.monotonic() - t0 < 1.25 + SLACK / 4
    assert srv.wait_for(lambda rs: rs[-1].disconnected, timeout=2)


def test_deadline_mid_stream_with_slow_tokens(scripted_server, client_for) -> None:
    srv = scripted_server({"p": [Turn(tokens=1000)]}, token_latency_s=0.01)
    t0 = time.monotonic()
    with pytest.raises(AttemptTimeout):
        client_for(srv).chat(user("p"), model="scripted-model", deadline=time.monotonic() + 0.3)
    assert time.monotonic() - t0 < 0.45 + SLACK
    assert srv.wait_for(lambda rs: rs[-1].disconnected, timeout=2)
    assert srv.chat_requests[-1].chunks_sent < 100


def test_cancel_closes_the_request(scripted_server, client_for) -> None:
    srv = scripted_server({"p": [faulty("stall")]})
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    t0 = time.monotonic()
    with pytest.raises(AttemptCancelled):
        client_for(srv).chat(user("p"), model="scripted-model", cancel=cancel, deadline=time.monotonic() + 10)
    assert time.monotonic() - t0 < 0.5 + SLACK
    assert srv.wait_for(lambda rs: rs[-1].disconnected, timeout=2)


def test_cancel_reaches_a_stall_before_the_first_byte_on_a_reused_connection(scripted_server, client_for) -> None:
    srv = scripted_server({"p": [faulty("stall")]})
    c = client_for(srv)
    assert c.tracks_streams  # the pool's network backend is wrapped (fails loudly if httpx changes)
    c.chat(user("warm"), model="scripted-model")
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    t0 = time.monotonic()
    with pytest.raises(AttemptCancelled):
        c.chat(user("p"), model="scripted-model", cancel=cancel, deadline=time.monotonic() + 5)
    assert time.monotonic() - t0 < 0.5 + SLACK
    warm, stalled = srv.chat_requests
    assert warm.client_port == stalled.client_port  # it was the kept-alive connection
    assert srv.wait_for(lambda rs: rs[-1].disconnected, timeout=2)


@pytest.mark.parametrize("stream", [True, False])
def test_connections_are_kept_alive(scripted_server, client_for, stream: bool) -> None:
    srv = scripted_server({"p": [call("grep", pattern="x"), answer("done")]})
    c = client_for(srv)
    for _ in range(5):
        c.chat(user("p"), model="scripted-model", stream=stream, tools=TOOLS)
    assert len({r.client_port for r in srv.chat_requests}) == 1


def test_deadline_already_passed_sends_nothing(scripted_server, client_for) -> None:
    srv = scripted_server()
    with pytest.raises(AttemptTimeout):
        client_for(srv).chat(user("p"), model="scripted-model", deadline=time.monotonic() - 1)
    assert srv.chat_requests == []


# --------------------------------------------------------------------------- unusable replies


@pytest.mark.parametrize("kind, needle", [
    ("truncated_json", "not valid JSON"),
    ("invalid_utf8", "not valid UTF-8"),
    ("wrong_content_type", "text/html"),
    ("empty", "empty"),
])
@pytest.mark.parametrize("stream", [True, False])
def test_unusable_bodies_are_server_reply_errors_not_retried(scripted_server, client_for, kind, needle, stream) -> None:
    srv = scripted_server({"p": [faulty(kind)]})
    with pytest.raises(ServerReplyError) as info:
        client_for(srv).chat(user("p"), model="scripted-model", stream=stream)
    if not (kind == "empty" and stream):
        assert needle in str(info.value)
    assert "\n" not in str(info.value) and len(srv.chat_requests) == 1


@pytest.mark.parametrize("stream", [True, False])
def test_huge_body_is_capped(scripted_server, client_for, stream: bool) -> None:
    srv = scripted_server({"p": [faulty("huge_body")]})  # 50 MB
    t0 = time.monotonic()
    with pytest.raises(ServerReplyError, match="cap"):
        client_for(srv, max_body_bytes=2 * 1024 * 1024).chat(user("p"), model="scripted-model", stream=stream)
    assert time.monotonic() - t0 < 3 + SLACK
    assert srv.wait_for(lambda rs: rs[-1].t_end is not None, timeout=5)
    assert srv.chat_requests[-1].disconnected  # it stopped reading long before 50 MB


def test_stream_without_done(scripted_server, client_for) -> None:
    srv = scripted_server({"ends": [faulty("no_done")], "hangs": [faulty("no_done", stall_s=30)]})
    c = client_for(srv, tail_grace_s=0.3)
    r = c.chat(user("ends"), model="scripted-model")
    assert r.content == "the answer" and r.completion_tokens == 2 and any("[DONE]" in w for w in r.warnings)
    t0 = time.monotonic()
    r = c.chat(user("hangs"), model="scripted-model")
    assert r.content == "the answer" and time.monotonic() - t0 < 1.0 + SLACK
    assert any("grace" in w for w in r.warnings)


def test_stream_rejected_falls_back_and_remembers(scripted_server, client_for) -> None:
    srv = scripted_server({"p": [faulty("reject_stream")]})
    c = client_for(srv)
    r = c.chat(user("p"), model="scripted-model", stream=True)
    assert r.content == "the answer" and not r.streamed and r.tries == 2
    assert any("streaming rejected" in w for w in r.warnings)
    c.chat(user("p"), model="scripted-model", stream=True)
    assert [q.body["stream"] for q in srv.chat_requests] == [True, False, False]


def test_other_4xx_is_request_rejected(scripted_server, client_for) -> None:
    srv = scripted_server({"p": [faulty("http", status=404)]})
    with pytest.raises(RequestRejected) as info:
        client_for(srv).chat(user("p"), model="scripted-model", stream=False)
    assert info.value.status == 404 and len(srv.chat_requests) == 1


def test_other_model_warns_or_errors(scripted_server, client_for) -> None:
    srv = scripted_server({"p": [faulty("other_model", model="impostor")]})
    r = client_for(srv).chat(user("p"), model="scripted-model")
    assert r.model == "impostor" and any("impostor" in w for w in r.warnings)
    with pytest.raises(ServerReplyError, match="impostor"):
        client_for(srv, model_mismatch="error").chat(user("p"), model="scripted-model")


# --------------------------------------------------------------------------- keys and concurrency


def test_api_key_is_sent_and_never_shown(scripted_server, client_for) -> None:
    key = "sk-canary-7f3a9"
    srv = scripted_server({"p": [answer("hi")]}, api_key=key)
    assert client_for(srv, api_key=key).chat(user("p"), model="scripted-model").content == "hi"
    assert srv.chat_requests[-1].headers["Authorization"] == f"Bearer {key}"
    with pytest.raises(RequestRejected) as info:
        client_for(srv, api_key="sk-wrong-key-123").chat(user("p"), model="scripted-model", stream=False)
    assert info.value.status == 401 and "sk-wrong" not in str(info.value)
    assert client_for(srv, api_key=key).models() == ["scripted-model"]
    assert key not in repr(client_for(srv, api_key=key))


def test_one_client_serves_threads_concurrently(scripted_server, client_for) -> None:
    srv = scripted_server({"p": [Turn(tokens=10)]}, token_latency_s=0.03)
    c = client_for(srv)
    out: list[ChatResponse] = []
    threads = [threading.Thread(target=lambda: out.append(c.chat(user("p"), model="scripted-model"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(out) == 4 and all(r.completion_tokens == 10 for r in out)
    # the server stamps t_end after its last write, so the client can finish first: wait
    # for the four stamps (hbench.testing's wait_for) rather than read a half-made record
    assert srv.wait_for(lambda rs: sum(1 for r in rs if r.path.rstrip("/").endswith("/chat/completions")
                                       and r.t_end is not None) == 4)
    reqs = srv.chat_requests
    assert max(r.t_start for r in reqs) < min(r.t_end for r in reqs)  # all four were in flight at once


# --------------------------------------------------------------------------- pinned internals


def test_cancellation_reaches_the_socket_on_the_installed_httpx(scripted_server) -> None:
    """The watchdog finds a request's socket through httpcore internals (watchdog.py):
    pinned here against the installed httpx/httpcore (pyproject.toml caps both at the
    versions this passed on). If it breaks, the deadline still holds through read
    timeouts, but a stall before the first byte is no longer cut at once."""
    import threading as _threading

    import httpcore

    from hbench.watchdog import StreamRegistry, install_tracking

    srv = scripted_server()
    registry = StreamRegistry()
    with httpx.Client() as http:
        assert install_tracking(http, registry), (httpx.__version__, httpcore.__version__)
        r = http.get(f"{srv.root_url}/health")
        assert r.status_code == 200
        assert registry.get(_threading.get_ident()) is not None  # this thread's stream was seen


def test_json_chunks_is_the_one_sse_reader_for_measuring() -> None:
    """hbench.sse.json_chunks (throughput, sweeps): events split across chunks, comments,
    CRLF, non-JSON and non-object events skipped, nothing after [DONE], bad UTF-8 replaced."""
    from hbench.sse import json_chunks

    body = (b': keep-alive\r\n\r\ndata: {"a": 1}\r\n\r\ndata: not json\n\ndata: [1]\n\n'
            b'data: {"b": "\xff"}\n\ndata: [DONE]\n\ndata: {"c": 3}\n\n')
    pieces = [body[i:i + 3] for i in range(0, len(body), 3)]
    assert list(json_chunks(pieces)) == [{"a": 1}, {"b": "\ufffd"}]
