"""A scripted OpenAI-compatible server on 127.0.0.1, and pytest fixtures.

The fake model for tests, benchmarks and plugin authors. It speaks enough of the
OpenAI chat-completions API (``GET /v1/models``, ``POST /v1/chat/completions`` streamed
as SSE or not, ``GET /health``) for a real client to drive a real tool-calling loop,
and it can misbehave on purpose in every way local servers do.

Python::

    from hbench.testing import ScriptedServer, answer, call, Fault

    with ScriptedServer({"budget": [call("read_file", path="notes.md"), answer("$42,000")]}) as srv:
        ...  # point a lane at srv.url ("http://127.0.0.1:PORT/v1")
        srv.chat_requests  # every chat request it got (body, times, disconnected, ...)

pytest (this module is a pytest plugin through the ``pytest11`` entry point)::

    def test_x(scripted_server, hbench_plugin):
        srv = scripted_server({"budget": [answer("42")]}, token_latency_s=0.001)
        hbench_plugin(MyPlugin())          # registered for this test only

Command line (a managed lane's ``start`` command in tests)::

    python -m hbench.testing serve --port P [--script FILE.json] [--model ID]
        [--token-latency S] [--latency S] [--timings] [--loading S] [--record FILE.jsonl]

prints ``ready http://127.0.0.1:P/v1`` once listening and serves until SIGTERM.

How a request finds its turn
----------------------------
* The **script** is the first one whose ``match`` is a substring of the text of the
  last ``user`` message (else ``default``; without a default the answer is ``"OK."``).
* The **turn** is the number of ``assistant`` messages after that user message: the
  first request of an attempt plays turn 0, the request after one tool round plays
  turn 1, ... Past the end, the last turn repeats (a one-turn tool-call script is a
  model that loops forever).
* The **attempt**: a request holding no assistant message *starts* an attempt, and a
  script's ``attempts`` list is indexed by how many attempts of that script started
  (cycling). A start request answered with a fault the client is expected to retry
  (``http``, ``drop``, ``reject_stream``) does not count as a new attempt. Later turns
  find their attempt from the tool-call ids the server handed out
  (``call_a<attempt>t<turn>i<i>_...``), else the latest attempt of that script.

Script file (JSON)
------------------
::

    {
      "model": "scripted-model",                     # optional, the served model id
      "scripts": [
        {"match": "budget",                          # substring of the user prompt
         "turns": [                                  # one attempt's turns, in order
           {"tool_calls": [{"name": "read_file", "arguments": {"path": "notes.md"}}]},
           {"content": "The budget is $42,000."}
         ]},
        {"match": "flaky",
         "attempts": [                               # attempt 1, 2, ... (cycles)
           [{"content": "right"}],
           [{"content": "wrong", "faults": [{"kind": "http", "status": 503, "times": 1}]}]
         ]}
      ],
      "default": [{"content": "I don't know."}]      # optional
    }

A turn has ``content`` (the final answer), ``reasoning`` (sent as
``reasoning_content``), ``tool_calls`` (``[{"name", "arguments": object or raw
string, "id"?}]``), ``tokens`` (answer with N filler tokens), ``finish_reason``,
``latency_s`` (before the first byte), ``token_latency_s`` (per streamed token), and
``faults``. A fault has ``kind``, ``times`` (how many requests reaching that turn it
hits; null = every one) and the options its kind reads:

=====================  =================================================================
kind                   effect
=====================  =================================================================
http                   HTTP ``status`` (500) with a JSON error; 429 sends ``Retry-After:
                       retry_after_s``
reject_stream          400 "streaming is not supported" to a ``stream: true`` request
stall                  no byte for ``stall_s`` (default: until the client hangs up)
stall_mid_stream       stalls ``stall_s`` after ``after_chunks`` SSE events
drop                   closes the connection after ``after_chunks`` events (or half the body)
truncated_json         the body (or one SSE event) is cut mid-JSON
invalid_utf8           the answer holds bytes that are not UTF-8
wrong_content_type     200 with ``text/html`` (a proxy's error page)
huge_body              an answer of ``size_bytes`` (50 MB)
no_done                the stream never sends ``[DONE]``; with ``stall_s`` it then holds
                       the connection open
empty                  200 with an empty body
malformed_args         tool-call arguments are broken JSON
args_object            tool-call arguments sent as a JSON object, not a string
calls_in_content       tool calls written into content as ``<tool_call>{...}</tool_call>``
fenced_calls           tool calls written into content as fenced JSON
missing_ids            tool calls without ids
stop_finish            ``finish_reason: "stop"`` although there are tool calls
other_model            answers as model ``model`` ("other-model")
many_args              the first tool call gets ``count`` (10,000) extra arguments
sse_comments           ``: keep-alive`` comment lines between events
no_usage               no usage, even when ``stream_options.include_usage`` asks
=====================  =================================================================

Server options (constructor or CLI): ``model``, ``latency_s``, ``token_latency_s``,
``timings`` (llama.cpp-style ``timings``, scaled by ``timings_factor``), ``loading_s``
(``/health`` and chat answer 503 "Loading model" that long), ``api_key`` (requests
without ``Authorization: Bearer KEY`` get 401), ``strict_model`` (a chat request for
another model id gets 404 "model 'x' not found", as vLLM and OpenAI answer). ``max_tokens`` truncates an answer
(``finish_reason: "length"``); ``ignore_eos: true`` with ``max_tokens`` answers exactly
``max_tokens`` tokens, as llama.cpp and vLLM do.
"""

from __future__ import annotations

from hbench.testing.handler import RecordedRequest, split_tokens
from hbench.testing.scripts import (
    DEFAULT_MODEL,
    FAULT_KINDS,
    RETRIED_FAULTS,
    Fault,
    Script,
    ScriptError,
    ToolCallSpec,
    Turn,
    answer,
    call,
    calls,
    load_script_file,
    parse_scripts,
)
from hbench.testing.server import ScriptedServer

try:  # the pytest plugin (entry point pytest11) when pytest is there; the server works without it
    from hbench.testing.fixtures import hbench_plugin, plugins_for_test, scripted_server
except ImportError:  # pragma: no cover - production installs without the test extra
    pass

__all__ = [
    "FAULT_KINDS",
    "Fault",
    "RecordedRequest",
    "Script",
    "ScriptError",
    "ScriptedServer",
    "ToolCallSpec",
    "Turn",
    "answer",
    "call",
    "calls",
    "load_script_file",
    "parse_scripts",
    "plugins_for_test",
    "split_tokens",
    "DEFAULT_MODEL",
    "RETRIED_FAULTS",
]
