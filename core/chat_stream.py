"""Assembling one streamed chat completion from its SSE chunks (content, reasoning,
tool-call deltas merged by index, usage, TTFT).
"""

from __future__ import annotations

from typing import Any


# --------------------------------------------------------------------------- stream assembly


class StreamAccumulator:
    """Merges ``chat.completion.chunk`` objects into one reply (tool calls by ``index``)."""

    def __init__(self) -> None:
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self._order: list[int] = []
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.timings: dict[str, Any] | None = None
        self.model: str | None = None
        self.events = 0

    def add(self, obj: dict[str, Any]) -> bool:
        """Merge one chunk; True when it carried content, reasoning or a tool-call delta."""
        self.events += 1
        if isinstance(obj.get("model"), str) and obj["model"]:
            self.model = obj["model"]
        if isinstance(obj.get("usage"), dict):
            self.usage = obj["usage"]
        if isinstance(obj.get("timings"), dict):
            self.timings = obj["timings"]
        useful = False
        choices = obj.get("choices")
        if not isinstance(choices, list):
            return False
        for ch in choices[:1]:
            if not isinstance(ch, dict):
                continue
            delta = ch.get("delta")
            if not isinstance(delta, dict):
                delta = ch.get("message") if isinstance(ch.get("message"), dict) else {}
            c = delta.get("content")
            if isinstance(c, str) and c:
                self.content.append(c)
                useful = True
            r = delta.get("reasoning_content", delta.get("reasoning"))
            if isinstance(r, str) and r:
                self.reasoning.append(r)
                useful = True
            tcs = delta.get("tool_calls")
            if isinstance(tcs, list) and tcs:
                for pos, d in enumerate(tcs):
                    if isinstance(d, dict):
                        self._merge_call(d, pos)
                        useful = True
            if ch.get("finish_reason"):
                self.finish_reason = ch["finish_reason"]
        return useful

    def _merge_call(self, d: dict[str, Any], pos: int) -> None:
        idx = d.get("index")
        if not isinstance(idx, int):
            did = d.get("id")
            known = next((k for k, v in self.calls.items() if did and v.get("id") == did), None)
            if known is not None:
                idx = known
            elif did or not self._order:
                idx = (max(self._order) + 1) if self._order else pos
            else:
                idx = self._order[-1]
        cur = self.calls.get(idx)
        if cur is None:
            cur = self.calls[idx] = {"id": None, "name": "", "arguments": None}
            self._order.append(idx)
        if isinstance(d.get("id"), str) and d["id"] and not cur["id"]:
            cur["id"] = d["id"]
        fn = d.get("function") if isinstance(d.get("function"), dict) else {}
        name = fn.get("name")
        if isinstance(name, str) and name and name != cur["name"]:
            cur["name"] = cur["name"] + name if cur["name"] else name
        args = fn.get("arguments")
        if isinstance(args, str):
            if isinstance(cur["arguments"], str):
                cur["arguments"] += args
            elif cur["arguments"] is None:
                cur["arguments"] = args
        elif args is not None:
            cur["arguments"] = args  # an object (or something odd): the normaliser judges it

    def raw_tool_calls(self) -> list[dict[str, Any]]:
        return [{"id": self.calls[i]["id"], "type": "function",
                 "function": {"name": self.calls[i]["name"], "arguments": self.calls[i]["arguments"]}}
                for i in sorted(self._order)]
