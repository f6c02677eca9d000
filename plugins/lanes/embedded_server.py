"""The embedded lane's server process: llama-cpp-python's OpenAI server with a fixed
function-calling chat handler.

Everything here runs inside the server process started by the ``embedded`` lane kind
(:mod:`hbench.plugins.lanes.embedded`, whose start command is ``python -c SERVE_CODE``),
never in hbench itself: it is the only place llama_cpp is imported.

Upstream ``chatml-function-calling`` (llama-cpp-python 0.3.x) has two bugs that would
make every attempt fail whatever the model does: with ``tool_choice: auto`` a *streamed*
request that turns into a tool call dies inside the server ("Automatic streaming tool
choice is not supported": the stream ends with no event), and when the model chooses to
answer in prose the answer is generated under the tool-name grammar, so it is always
empty. :func:`serve` registers :data:`FIXED_CHAT_FORMAT` (same prompt and grammar for
tool calls, a free-text answer, tool calls streamable) and then runs ``llama_cpp.server``
unchanged.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any, Iterator

CHAT_FORMAT = "chatml-function-calling"
#: the chat handler the embedded server registers: CHAT_FORMAT with two upstream bugs fixed
#: (see :func:`_tool_calling_handler`)
FIXED_CHAT_FORMAT = "hbench-chatml-function-calling"

#: what the start command runs with ``python -c``: argv after it goes to llama_cpp.server
SERVE_CODE = "from hbench.plugins.lanes.embedded_server import serve; serve()"


def _chunks_from_response(resp: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A finished chat completion as OpenAI stream chunks (role, content/tool calls,
    finish reason, then a usage chunk with ``choices: []`` like ``include_usage``)."""
    base = {"id": resp["id"], "object": "chat.completion.chunk", "created": resp["created"],
            "model": resp["model"]}
    choice = resp["choices"][0]
    msg = choice["message"]
    delta: dict[str, Any] = {"role": "assistant", "content": msg.get("content") or None}
    if msg.get("tool_calls"):
        delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(msg["tool_calls"])]
    yield {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}]}
    yield {**base, "choices": [{"index": 0, "delta": {}, "logprobs": None,
                                "finish_reason": choice.get("finish_reason")}]}
    if resp.get("usage"):
        yield {**base, "choices": [], "usage": resp["usage"]}


def _fix_messages(messages: list[dict[str, Any]], add_system: bool = True) -> list[dict[str, Any]]:
    """Upstream's template renders no ``tool`` message at all (the model would never see a
    tool result) and lists the tools only inside a system message. Tool results become
    user turns naming the call; a system message is added when there is none (only with
    tools: an empty system turn makes the model end a plain completion at once)."""
    names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.get("role") == "assistant":
            for call in m.get("tool_calls") or []:
                names[call.get("id") or ""] = (call.get("function") or {}).get("name") or "tool"
        if m.get("role") == "tool":
            name = names.get(m.get("tool_call_id") or "", "tool")
            content = m.get("content")
            if not isinstance(content, str):  # a list of content parts
                content = "".join(p.get("text", "") for p in content or [] if isinstance(p, dict))
            out.append({"role": "user", "content": f"functions.{name} returned:\n{content}"})
        else:
            out.append(m)
    if add_system and not any(m.get("role") == "system" for m in out):
        out.insert(0, {"role": "system", "content": ""})
    return out


#: upstream chatml-function-calling's prompt (llama-cpp-python 0.3.x, MIT), unchanged
_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message.role }}\n"
    "{% if message.role == 'system' %}"
    "{{ message.content }}"
    "{% if tool_calls %}"
    "\n\nYou have access to the following functions:\n"
    "{% for tool in tools %}"
    "\nfunctions.{{ tool.function.name }}:\n"
    "{{ tool.function.parameters | tojson }}"
    "\n{% endfor %}"
    "\n\nYou can respond to users messages with either a single message or one or more function calls."
    "\n\nTo respond with a message begin the message with 'message:', use the following format:"
    "\n\nmessage:"
    "\n<message>"
    "\n\nTo respond with one or more function calls begin the message with 'functions.<function_name>:', use the following format:"
    "\n\nfunctions.<function_name>:"
    '\n{ "arg1": "value1", "arg2": "value2" }'
    "\nfunctions.<function_name>:"
    '\n{ "arg1": "value1", "arg2": "value2" }'
    "{% endif %}"
    "<|im_end|>\n"
    "{% endif %}"
    "{% if message.role == 'user' %}"
    "{{ message.content }}"
    "<|im_end|>\n"
    "{% endif %}"
    "{% if message.role == 'assistant' %}"
    "{% if message.content and message.content | length > 0 %}"
    "{% if tool_calls %}"
    "message:\n"
    "{% endif %}"
    "{{ message.content }}"
    "<|im_end|>\n"
    "{% endif %}"
    "{% if 'tool_calls' in message %}"
    "{% for tool_call in message.tool_calls %}"
    "functions.{{ tool_call.function.name }}:\n"
    "{{ tool_call.function.arguments }}"
    "{% endfor %}"
    "<|im_end|>\n"
    "{% endif %}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

#: grammar-constrained sampling over Gemma's 262k-token vocabulary costs ~150 ms a token on
#: 2 idle cores (~700 ms when they are busy), against ~20 ms free. Tool arguments here are a
#: path, a pattern or an expression; a base model can ramble inside a JSON string until
#: max_tokens, so a tool call gets at most this many tokens (cut arguments fail to parse and
#: the agent counts a format error, which is the honest outcome).
TOOL_ARGS_MAX_TOKENS = 64

#: sampling arguments a chat request carries that ``Llama.create_completion`` also takes
_SAMPLING = ("top_p", "top_k", "min_p", "typical_p", "presence_penalty", "frequency_penalty", "repeat_penalty",
             "tfs_z", "mirostat_mode", "mirostat_tau", "mirostat_eta", "model", "logits_processor", "seed")


def _tool_calling_handler(upstream: Any) -> Any:
    """Wrap llama-cpp-python's ``chatml_function_calling`` handler (``upstream``).

    Messages first go through :func:`_fix_messages` (tool results reach the model).
    Requests without tools, with ``tool_choice: none`` or a named tool go to upstream
    (those paths work). For ``auto`` (also ``required`` and a missing ``tool_choice`` with
    tools, which upstream does not handle) it does what upstream means to do, on one
    prompt (one prefill, the KV cache reused): a grammar picks ``functions.NAME:`` or
    ``message:``. A tool call is then generated by upstream's named-tool path (argument
    JSON constrained by the tool's schema, at most :data:`TOOL_ARGS_MAX_TOKENS`; one call per
    turn) and returned whole, or as
    stream chunks. Prose is generated free, bounded by ``max_tokens``, streamed when
    asked, where upstream constrains it to the tool-name grammar (always "") with no
    ``max_tokens``. The template is rendered without HTML autoescape (upstream turns
    ``'`` into ``&#39;`` in every prompt).
    """
    # llama_cpp (and jinja2, which it brings) are imported here, in the server process
    # only: they are the [embedded] extra, and hbench itself never needs them
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    from llama_cpp import llama_chat_format, llama_grammar

    template = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined).from_string(_TEMPLATE)

    def handler(*, llama: Any, messages: Any, tools: Any = None, tool_choice: Any = None,
                stream: bool = False, functions: Any = None, function_call: Any = None,
                temperature: float = 0.2, max_tokens: int | None = None, stop: Any = None, **kwargs: Any) -> Any:
        messages = _fix_messages(messages, add_system=bool(tools))
        common = dict(temperature=temperature, max_tokens=max_tokens, stop=stop, **kwargs)
        if functions is not None or function_call is not None or not tools or tool_choice == "none" \
                or isinstance(tool_choice, dict):
            return upstream(llama=llama, messages=messages, tools=tools, tool_choice=tool_choice, stream=stream,
                            functions=functions, function_call=function_call, **common)
        prompt = template.render(messages=messages, tools=tools, tool_calls=True, add_generation_prompt=True)
        sampling = {k: kwargs[k] for k in _SAMPLING if k in kwargs}
        names = " | ".join(f'"functions.{t["function"]["name"]}:"' for t in tools)
        grammar = llama_grammar.LlamaGrammar.from_string(
            f'root ::= functions | "message:"\nfunctions ::= {names}\n', verbose=llama.verbose)
        choice = llama.create_completion(prompt=prompt, temperature=0, stream=False, stop=[":"],
                                         max_tokens=None, grammar=grammar, **sampling)
        text = choice["choices"][0]["text"]
        if text.startswith("functions."):
            named = {"type": "function", "function": {"name": text[len("functions."):].rstrip(":")}}
            capped = {**common, "max_tokens": min(max_tokens or TOOL_ARGS_MAX_TOKENS, TOOL_ARGS_MAX_TOKENS)}
            resp = upstream(llama=llama, messages=messages, tools=tools, tool_choice=named, stream=False, **capped)
            return _chunks_from_response(resp) if stream else resp
        stops = ["<|im_end|>", *([stop] if isinstance(stop, str) else stop or [])]
        completion = llama.create_completion(prompt=prompt + "message:\n", temperature=temperature,
                                             max_tokens=max_tokens, stop=stops, stream=stream, **sampling)
        return llama_chat_format._convert_completion_to_chat(completion, stream=stream)

    return handler


def _exit_with_parent(poll_s: float = 1.0) -> None:
    """End this server when the hbench that started it is gone.

    The lifecycle starts servers in their own session (so a Ctrl-C reaches hbench, not the
    model), which also means a SIGKILLed hbench would leave a 2 GB server behind, reparented
    to init. A daemon thread notices the new parent and SIGTERMs the server (SIGKILL after
    10 s). ``PR_SET_PDEATHSIG`` is not used: it fires when the parent *thread* exits, and
    the runner may start lanes from worker threads.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        print(f"hbench embedded server: parent {parent} is gone; stopping", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)
        os._exit(1)

    threading.Thread(target=watch, name="hbench-parent-watch", daemon=True).start()


def serve() -> None:
    """The embedded server: register :data:`FIXED_CHAT_FORMAT`, then run llama_cpp.server
    with this process's argv (``python -c SERVE_CODE --model ... --chat_format ...``)."""
    _exit_with_parent()
    from llama_cpp import llama_chat_format  # the [embedded] extra: only in the server process
    from llama_cpp.server.__main__ import main

    upstream = llama_chat_format.get_chat_completion_handler(CHAT_FORMAT)
    llama_chat_format.LlamaChatCompletionHandlerRegistry().register_chat_completion_handler(
        FIXED_CHAT_FORMAT, _tool_calling_handler(upstream), overwrite=True)
    main()
