"""Test double: a scripted OpenAI-compatible chat-completions server on 127.0.0.1.

This machine has no network and no LLM server, so tests of the HTTP engine talk to this
instead. The scenario of a request is the text of its last message, e.g. "ok:1" or
"429-once:2" (the part after the colon only keeps keys apart). The server counts hits per
message text, remembers when each hit arrived and which Authorization headers it saw, and
tracks the most requests it had in flight at once.

Scenarios:
  ok             200 with a valid completion
  429-once       429 with Retry-After: 1, then ok
  429-date-once  429 with Retry-After as an HTTP date ~2 s ahead, then ok
  500-once       500, then ok
  500-always     500 every time
  hang           sleeps `hang_s` before answering (past the client's timeout)
  garbage        200 with a body that is not JSON
  no-choices     200 with a JSON body without choices
  echo-auth-400  400 whose body echoes the Authorization header back (a leaky proxy)
  slow           sleeps 0.2 s, then ok (for concurrency checks)

A request with `"stream": true` gets its 200 completion as server-sent events (the content in
two deltas, then the finish reason, then usage), as OpenAI, vLLM and llama.cpp send it. With
`slots=n`, GET /props answers `{"total_slots": n}` as llama.cpp's server does.

With `responder` (a function of the request body returning the reply text), every request is
answered 200 with that text instead, and usage counted as characters / 4: a stand-in model for
whole-pipeline tests (see `scripted_engine.ChatResponder`).

`fail_next = n` makes the next n requests, whatever their scenario, fail with 503: an endpoint
outage that a test can start and end between two runs.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAIServer:
    def __init__(
        self,
        hang_s: float = 2.0,
        responder: Callable[[dict], str] | None = None,
        slots: int | None = None,
    ):
        self.hang_s = hang_s
        self.responder = responder
        self.slots = slots
        self.hits: dict[str, list[float]] = defaultdict(list)
        self.auth_headers: list[str] = []
        self.bodies: list[dict] = []
        self.retry_after_dates: dict[str, float] = {}
        self.max_in_flight = 0
        self.fail_next = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()  # wake sleeping "hang" handlers
        self._httpd.shutdown()
        self._httpd.server_close()

    def handle(self, key: str, auth: str | None, body: dict) -> tuple[int, dict, bytes]:
        """Decide the reply for one request: (status, headers, body bytes)."""
        now = time.time()
        with self._lock:
            self.hits[key].append(now)
            self.auth_headers.append(auth or "")
            self.bodies.append(body)
            n = len(self.hits[key])
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            outage = self.fail_next > 0
            self.fail_next -= outage
        try:
            if outage:
                return 503, {}, b'{"error": "service unavailable"}'

            if self.responder is not None:
                return 200, {}, json.dumps(_answer(self.responder, body)).encode()
            return self._reply(key.split(":")[0], n, auth, now)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _reply(self, scenario: str, n: int, auth: str | None, now: float):
        if scenario == "429-once" and n == 1:
            return 429, {"Retry-After": "1"}, b'{"error": "rate limited"}'
        if scenario == "429-date-once" and n == 1:
            when = now + 2
            self.retry_after_dates[scenario] = float(int(when))  # HTTP dates have 1 s resolution
            return 429, {"Retry-After": formatdate(when, usegmt=True)}, b"{}"
        if scenario == "500-once" and n == 1 or scenario == "500-always":
            return 500, {}, b"internal error"
        if scenario == "hang":
            self._stop.wait(self.hang_s)
        if scenario == "slow":
            time.sleep(0.2)
        if scenario == "garbage":
            return 200, {}, b"<html>502 Bad Gateway</html>"
        if scenario == "no-choices":
            return 200, {}, json.dumps({"object": "chat.completion", "choices": []}).encode()
        if scenario == "echo-auth-400":
            return 400, {}, f"bad request; you sent Authorization: {auth}".encode()
        return 200, {}, json.dumps(_completion(json.dumps({"answer": scenario}))).encode()


def _completion(content: str, prompt_tokens: int = 11, completion_tokens: int = 7) -> dict:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _answer(responder: Callable[[dict], str], body: dict) -> dict:
    text = responder(body)
    prompt_chars = sum(len(m.get("content", "")) for m in body.get("messages", []))
    return _completion(text, max(1, prompt_chars // 4), max(1, len(text) // 4))


def _as_events(payload: bytes) -> bytes | None:
    """A completion body as server-sent events; None when it is not a completion."""
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    base = {k: data[k] for k in ("id", "object", "created", "model") if k in data}
    events = []
    for choice in data.get("choices") or []:
        content = choice.get("message", {}).get("content") or ""
        for part in (content[: len(content) // 2], content[len(content) // 2 :]):
            delta = {"index": 0, "delta": {"content": part}, "finish_reason": None}
            events.append(base | {"choices": [delta]})
        end = {"index": 0, "delta": {}, "finish_reason": choice.get("finish_reason")}
        events.append(base | {"choices": [end]})
    events.append(base | {"choices": [], "usage": data.get("usage")})
    # Raw UTF-8 and no charset in the header, as llama.cpp sends them.
    lines = [b"data: " + json.dumps(e, ensure_ascii=False).encode() + b"\n\n" for e in events]
    return b"".join(lines) + b"data: [DONE]\n\n"


def _make_handler(server: FakeOpenAIServer):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            if self.path == "/props" and server.slots:
                payload = json.dumps({"total_slots": server.slots}).encode()
                self.send_response(200)
            else:
                payload = b"{}"
                self.send_response(404)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self):  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            key = body.get("messages", [{}])[-1].get("content", "")
            status, headers, payload = server.handle(key, self.headers.get("Authorization"), body)
            events = _as_events(payload) if status == 200 and body.get("stream") else None
            if events is not None:
                payload, headers = events, headers | {"Content-Type": "text/event-stream"}
            try:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client timed out and left; that is the point of "hang"

        def log_message(self, *args):  # keep test output clean
            pass

    return Handler
