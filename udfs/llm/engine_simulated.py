"""Test and benchmark double of an LLM engine: deterministic answers, GPU-like timing.

There is no GPU or LLM server on a developer machine or in CI, yet benchmarks need the cost
shape of one (a batch takes time proportional to its tokens) and tests need to count how often
each request was really sent (e.g. to prove the journal prevents paying twice). This engine:

- answers from a user-supplied function `LLMRequest -> str` or a script mapping keyed by
  request_id (falling back to the task name);
- sleeps `prompt_tokens / prompt_tokens_per_s + completion_tokens / gen_tokens_per_s` per
  batch, with tokens estimated as characters / 4;
- counts calls per request_id in memory and, if `counts_path` is given, appends them to that
  file, so counts from several Spark worker processes add up (`read_call_counts`).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from webscale_rl.udfs.llm.interface import LLMRequest, LLMResponse

CHARS_PER_TOKEN = 4
TEMPLATE_TOKENS_PER_MESSAGE = 4

Responder = Callable[[LLMRequest], str | None] | Mapping[str, str]


class SimulatedEngine:
    name = "simulated"

    def __init__(
        self,
        responder: Responder,
        *,
        prompt_tokens_per_s: float = 50_000.0,
        gen_tokens_per_s: float = 5_000.0,
        counts_path: str | os.PathLike | None = None,
        model: str = "simulated",
        sleep: Callable[[float], None] = time.sleep,
    ):
        if prompt_tokens_per_s <= 0 or gen_tokens_per_s <= 0:
            raise ValueError("token rates must be > 0")
        if not callable(responder) and not isinstance(responder, Mapping):
            raise TypeError("responder must be a function LLMRequest -> str or a mapping")
        self.model = model
        self._responder = responder
        self._prompt_rate = prompt_tokens_per_s
        self._gen_rate = gen_tokens_per_s
        self._counts_path = Path(counts_path) if counts_path else None
        self._sleep = sleep
        self.calls: Counter[str] = Counter()
        self.batches = 0
        self.simulated_seconds = 0.0

    def generate(self, requests: Sequence[LLMRequest]) -> list[LLMResponse]:
        responses = [self._respond(r) for r in requests]
        self._count([r.request_id for r in requests])
        seconds = self.cost_seconds(responses)
        self.batches += 1
        self.simulated_seconds += seconds
        self._sleep(seconds)
        return responses

    def cost_seconds(self, responses: Sequence[LLMResponse]) -> float:
        prompt = sum(r.prompt_tokens for r in responses)
        generated = sum(r.completion_tokens for r in responses)
        return prompt / self._prompt_rate + generated / self._gen_rate

    def _respond(self, request: LLMRequest) -> LLMResponse:
        prompt_tokens = estimate_prompt_tokens(request.messages)
        try:
            text = self._text_for(request)
        except Exception as e:  # noqa: BLE001 - a broken responder is a row error, like a real engine
            return LLMResponse(
                request.request_id, None, prompt_tokens, error=f"responder_error: {e}"
            )
        if text is None:
            return LLMResponse(
                request.request_id, None, prompt_tokens, error="no_scripted_response"
            )
        finish = "stop"
        if estimate_tokens(text) > request.max_tokens:
            text, finish = text[: request.max_tokens * CHARS_PER_TOKEN], "length"
        return LLMResponse(
            request_id=request.request_id,
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=estimate_tokens(text),
            finish_reason=finish,
        )

    def _text_for(self, request: LLMRequest) -> str | None:
        if isinstance(self._responder, Mapping):
            return self._responder.get(request.request_id, self._responder.get(request.task))
        return self._responder(request)

    def _count(self, request_ids: list[str]) -> None:
        self.calls.update(request_ids)
        if self._counts_path is None or not request_ids:
            return
        # One O_APPEND write per batch: appends from several processes do not interleave.
        data = "".join(f"{rid}\n" for rid in request_ids).encode()
        self._counts_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._counts_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)


def read_call_counts(path: str | os.PathLike) -> Counter[str]:
    """Calls per request_id recorded by every SimulatedEngine that appended to `path`."""
    p = Path(path)
    if not p.exists():
        return Counter()
    return Counter(line for line in p.read_text().splitlines() if line)


def estimate_tokens(text: str) -> int:
    return max(1, len(text) // CHARS_PER_TOKEN) if text else 0


def estimate_prompt_tokens(messages: list[dict]) -> int:
    return sum(
        estimate_tokens(str(m.get("content", ""))) + TEMPLATE_TOKENS_PER_MESSAGE for m in messages
    )
