"""Secrets in every form: a real loopback server reflects the canary API key and the
password of the lane URL's userinfo (``--lane-url http://user:PASSWORD@host/v1``) in
every encoding a server or library uses (raw, JSON-escaped with ``\\/``, URL-encoded,
base64 of ``Bearer <key>`` and ``user:key``, HTML entities) in its answers, its 503
bodies (info-level retry logs) and its 400 bodies (attempt errors). Every output of
``hbench run`` (files, JSON debug logs) and of ``hbench doctor`` (text and ``--json``) is
decoded every way and searched: zero hits. Doctor calls a 401 "key rejected"."""

from __future__ import annotations

import base64
import html
import json
import re
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, unquote

import pytest

from relhelp import PYTHON, hbench_env, read_journal, write_suite

KEY = "sk-canary/7f3a+9c1e=5b2d-DO-NOT-LEAK"
PASSWORD = "pw-canary/Zq9+x=31-NOT-THIS-EITHER"
KEY_ENV = "HBENCH_REL_FORMS_KEY"


def forms(secret: str) -> list[str]:
    """The secret as servers echo it (built here independently of hbench's scrubber)."""
    b = secret.encode()
    out = [
        secret,
        json.dumps(secret)[1:-1].replace("/", "\\/"),
        quote(secret, safe=""), re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(secret, safe="")),
        quote_plus(secret),
        base64.b64encode(b"Bearer " + b).decode(), base64.b64encode(b"user:" + b).decode(),
        base64.b64encode(b).decode(), base64.urlsafe_b64encode(b"Bearer " + b).decode(),
        html.escape(secret), "".join(f"&#{ord(c)};" for c in secret), "".join(f"&#x{ord(c):x};" for c in secret),
    ]
    return out


REFLECTED = " ".join(f"[{f}]" for s in (KEY, PASSWORD) for f in forms(s))


def leaks(text: str) -> list[str]:
    """Every way ``text`` still holds a secret: as it is, URL-, HTML-, JSON-decoded, and in
    any base64 run (standard or URL-safe, any padding)."""
    found = []
    views = {"raw": text, "url": unquote(text), "html": html.unescape(text), "json": text.replace("\\/", "/"),
             "json2": text.replace("\\\\", "\\").replace("\\/", "/"), "html2": html.unescape(html.unescape(text))}
    for name, view in views.items():
        for s in (KEY, PASSWORD):
            if s in view:
                found.append(f"{name}:{s[:12]}")
    for run in re.findall(r"[A-Za-z0-9+/_\-]{12,}={0,2}", text):
        for dec in (base64.b64decode, base64.urlsafe_b64decode):
            for cut in range(4):  # every alignment of a run cut out of a longer blob
                chunk = run[cut:]
                chunk = chunk[: len(chunk) - len(chunk) % 4]
                try:
                    data = dec(chunk + "==")
                except ValueError:
                    continue
                for s in (KEY, PASSWORD):
                    if s.encode()[:16] in data:
                        found.append(f"b64:{s[:12]}")
    return found


class Reflector:
    """A loopback OpenAI-ish server whose bodies reflect both secrets in every form."""

    def __init__(self, chat_status: int | None = None) -> None:
        self.count = 0
        self.auth: list[str] = []
        owner = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _send(self, status: int, obj: Any) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                if self.path.endswith("/models"):
                    return self._send(200, {"object": "list", "data": [{"id": "m", "object": "model"}]})
                self._send(404, {"error": {"message": f"no route; you sent {REFLECTED}"}})

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                owner.auth.append(self.headers.get("Authorization") or "")
                with threading.Lock():
                    owner.count += 1
                    n = owner.count
                if owner.chat_status:
                    return self._send(owner.chat_status, {"error": {"message": f"refused {REFLECTED}"}})
                user = next((m.get("content") for m in reversed(body.get("messages") or [])
                             if m.get("role") == "user"), "")
                if "reject" in str(user):
                    return self._send(400, {"error": {"message": f"tool choice refused for {REFLECTED}"}})
                if n % 2 == 1:  # every other request: a retried 503 (an info-level retry log line)
                    return self._send(503, {"error": {"message": f"overloaded, your key {REFLECTED}"}})
                self._send(200, {"id": "c", "object": "chat.completion", "model": "m",
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": f"ok {REFLECTED}"}}],
                                 "usage": {"prompt_tokens": 3, "completion_tokens": 5}})

        self.chat_status = chat_status
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, userinfo: bool = True) -> str:
        return f"http://{'user:' + quote(PASSWORD, safe='') + '@' if userinfo else ''}127.0.0.1:{self.port}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def reflector():
    made: list[Reflector] = []

    def make(**kw: Any) -> Reflector:
        made.append(Reflector(**kw))
        return made[-1]

    yield make
    for r in made:
        r.close()


def test_leaks_detector_finds_every_form():
    """The detector itself: each reflected form is found (else a pass proves nothing)."""
    for s in (KEY, PASSWORD):
        for f in forms(s):
            assert leaks(f"xx {f} yy"), f


def test_run_outputs_hold_no_form_of_the_key_or_url_password(tmp_path: Path, reflector):
    suite = write_suite(tmp_path / "suite", [
        {"id": "echo", "prompt": "say ok", "vibe": True},
        {"id": "reject", "prompt": "reject this one"},
    ], runs=2, timeout_s=20)
    srv = reflector()
    out = tmp_path / "out"
    r = subprocess.run(
        [PYTHON, "-m", "hbench", "--log-format", "json", "--log-level", "debug", "run", "--suite", str(suite),
         "--out", str(out), "--lane-url", srv.url(), "--model", "m", "--api-key-env", KEY_ENV],
        cwd=tmp_path, env=hbench_env(**{KEY_ENV: KEY}), capture_output=True, text=True, timeout=180)
    logs = r.stdout + r.stderr
    assert r.returncode in (0, 3), logs[-3000:]
    assert srv.count >= 4 and '"client.retry"' in logs  # the 503s were retried and logged at info
    atts = [a["attempt"] for a in read_journal(out / "journal.jsonl") if a["type"] == "attempt"]
    assert any(a["error"] and "400" in a["error"] for a in atts)  # the 400 body reached the attempt error
    assert any("ok" in a["answer"] for a in atts)
    # every reflected form reached the outputs, and was cut there (else a pass proves nothing)
    assert min(a["answer"].count("***") for a in atts if "ok" in a["answer"]) >= len(forms(KEY)) + len(forms(PASSWORD))
    hits = {str(p.relative_to(out)): leaks(p.read_text(errors="replace")) for p in out.rglob("*") if p.is_file()}
    assert {k: v for k, v in hits.items() if v} == {}
    assert leaks(logs) == []
    sc = json.loads((out / "m.json").read_text())
    assert sc["lane"]["base_url"] == f"http://127.0.0.1:{srv.port}/v1"  # userinfo removed, nothing else


@pytest.mark.parametrize("as_json", [False, True])
def test_doctor_output_holds_no_form_of_the_key(tmp_path: Path, reflector, as_json: bool):
    srv = reflector(chat_status=400)
    r = subprocess.run(
        [PYTHON, "-m", "hbench", "doctor", "--lane-url", srv.url(), "--model", "m", "--api-key-env", KEY_ENV]
        + (["--json"] if as_json else []),
        cwd=tmp_path, env=hbench_env(**{KEY_ENV: KEY}), capture_output=True, text=True, timeout=60)
    text = r.stdout + r.stderr
    assert "refused" in text and "400" in text and "***" in text, text  # the reflecting body, scrubbed
    assert leaks(text) == [], text


def test_doctor_calls_a_401_key_rejected_not_a_parser_problem(tmp_path: Path, reflector):
    srv = reflector(chat_status=401)
    r = subprocess.run(
        [PYTHON, "-m", "hbench", "doctor", "--lane-url", srv.url(userinfo=False), "--model", "m",
         "--api-key-env", KEY_ENV],
        cwd=tmp_path, env=hbench_env(**{KEY_ENV: KEY}), capture_output=True, text=True, timeout=60)
    text = r.stdout + r.stderr
    assert r.returncode == 1
    assert "key rejected (HTTP 401" in text and KEY_ENV in text, text
    assert "parser" not in text and "jinja" not in text.lower(), text
    assert leaks(text) == []
