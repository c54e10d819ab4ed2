"""How many requests the OpenAI engine keeps in flight: the server's slots, adapted to its health.

A server that queues requests beyond its parallel slots (llama.cpp, a busy vLLM) makes queued
requests wait, so they time out and are sent again while the first copy is still queued: the
server then does the same work twice and falls further behind. So:

- `server_slots` asks the server how many requests it decodes at once (llama.cpp reports
  `total_slots` in `/props`, or one entry per slot in `/slots`); the engine never has more in
  flight than that. Servers that do not say (OpenAI, vLLM) keep `llm.max_concurrency`.
- `AdaptiveLimit` is additive-increase / multiplicative-decrease, as TCP does: a timeout, 429 or
  503 halves the number of requests allowed in flight (at least one); a run of successes as
  long as the current limit adds one back, up to the ceiling.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import requests

PROBE_TIMEOUT_S = 5.0


def server_root(base_url: str) -> str:
    """`http://host:8000/v1` -> `http://host:8000` (llama.cpp serves /props and /slots there)."""
    root = base_url.rstrip("/")
    return root[: -len("/v1")] if root.endswith("/v1") else root


def server_slots(base_url: str, headers: dict | None = None) -> int | None:
    """Requests the server decodes at once, when it reports it; None when it does not."""
    probes = (
        ("/props", lambda d: d.get("total_slots") if isinstance(d, dict) else None),
        ("/slots", lambda d: len(d) if isinstance(d, list) else None),
    )
    for path, read in probes:
        try:
            resp = requests.get(
                server_root(base_url) + path, headers=headers or {}, timeout=PROBE_TIMEOUT_S
            )
            slots = read(resp.json()) if resp.status_code == 200 else None
        except (requests.RequestException, ValueError):
            continue
        if isinstance(slots, int) and not isinstance(slots, bool) and slots > 0:
            return slots
    return None


class AdaptiveLimit:
    """At most `limit` holders at once; the limit moves between 1 and `ceiling` (AIMD)."""

    def __init__(self, ceiling: int):
        self.ceiling = max(1, ceiling)
        self.limit = float(self.ceiling)
        self.in_flight = 0
        self.max_in_flight = 0  # the most ever held at once (tests, logs)
        self._cond = threading.Condition()

    def acquire(self) -> None:
        with self._cond:
            while self.in_flight >= max(1, int(self.limit)):
                self._cond.wait()
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def release(self, overloaded: bool | None) -> None:
        """`overloaded`: True for a timeout/429/503, False for a success, None for neither."""
        with self._cond:
            self.in_flight -= 1
            if overloaded:
                self.limit = max(1.0, self.limit / 2)
            elif overloaded is False:
                self.limit = min(float(self.ceiling), self.limit + 1 / self.limit)
            self._cond.notify_all()

    @contextmanager
    def held(self):
        """`with limit.held() as report: ...; report(overloaded)`; released on exit."""
        outcome: list[bool | None] = [None]
        self.acquire()
        try:
            yield lambda overloaded: outcome.__setitem__(0, overloaded)
        finally:
            self.release(outcome[0])
