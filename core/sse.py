"""Server-sent events: one incremental reader for every stream hbench reads (the chat
client, the throughput probe).
"""

from __future__ import annotations

import codecs
from typing import Iterable

import attrs


# --------------------------------------------------------------------------- SSE


@attrs.frozen
class SSEEvent:
    data: str
    event: str | None = None
    id: str | None = None


class SSEParser:
    """Incremental Server-Sent Events parser (the WHATWG rules that matter here).

    Bytes in, events out: UTF-8 is decoded incrementally and strictly (a character split
    across chunks is fine, an invalid byte raises ``UnicodeDecodeError``); lines end in
    CRLF, LF or CR; lines starting with ``:`` are comments; ``data`` lines of one event
    are joined with ``\\n``; a blank line dispatches the event.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
        self._buf = ""
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None
        self._first = True

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        text = self._decoder.decode(chunk)
        if self._first and text:
            text = text.lstrip("\ufeff")
            self._first = False
        return self._lines(self._buf + text, final=False)

    def close(self) -> list[SSEEvent]:
        """End of stream: flush; an event without its blank line is dropped (per spec)."""
        tail = self._decoder.decode(b"", final=True)
        events = self._lines(self._buf + tail, final=True)
        return events

    def _lines(self, text: str, final: bool) -> list[SSEEvent]:
        out: list[SSEEvent] = []
        start = 0
        n = len(text)
        i = 0
        while i < n:
            c = text[i]
            if c == "\n" or c == "\r":
                if c == "\r" and i + 1 == n and not final:
                    break  # maybe CRLF split across chunks: wait for the next byte
                line = text[start:i]
                i += 2 if (c == "\r" and i + 1 < n and text[i + 1] == "\n") else 1
                start = i
                ev = self._line(line)
                if ev is not None:
                    out.append(ev)
                continue
            i += 1
        self._buf = text[start:]
        if final:
            self._buf = ""
        return out

    def _line(self, line: str) -> SSEEvent | None:
        if line == "":
            if not self._data:
                self._event = None
                return None
            ev = SSEEvent(data="\n".join(self._data), event=self._event, id=self._id)
            self._data, self._event = [], None
            return ev
        if line.startswith(":"):
            return None
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field == "id" and "\x00" not in value:
            self._id = value
        return None


def parse_sse(data: bytes | Iterable[bytes]) -> list[SSEEvent]:
    """Every event in an SSE byte stream (one bytes object or an iterable of chunks)."""
    parser = SSEParser()
    chunks = [data] if isinstance(data, (bytes, bytearray)) else data
    out: list[SSEEvent] = []
    for chunk in chunks:
        out.extend(parser.feed(bytes(chunk)))
    out.extend(parser.close())
    return out
