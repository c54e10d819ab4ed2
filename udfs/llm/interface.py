"""The one small interface every LLM engine implements.

A stage builds `LLMRequest`s, hands a batch to `Engine.generate`, and parses the returned
`LLMResponse`s. Per-row failures are data (`LLMResponse.error`), never exceptions, so one bad
row cannot kill a Spark task.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

TASKS = ("llm_filter", "identify", "generate", "verify")


@dataclass(frozen=True)
class LLMRequest:
    # Deterministic: stage + row id + prompt version, so a journal can skip finished work.
    request_id: str
    task: str
    # Chat messages: [{"role": "system" | "user" | "assistant", "content": str}, ...]
    messages: list[dict]
    # JSON schema the answer must follow (structured output); None for free text.
    json_schema: dict | None = None
    # The structured inputs the prompt was built from (document text, persona, question, ...).
    # The rule-based engine reads these; model engines only read `messages`.
    payload: dict = field(default_factory=dict)
    max_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None


@dataclass
class LLMResponse:
    request_id: str
    text: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None  # "stop", "length", ...
    error: str | None = None  # set when no usable text came back


class Engine(Protocol):
    name: str  # "none" | "vllm" | "openai" | a test double's name
    model: str

    def generate(self, requests: Sequence[LLMRequest]) -> list[LLMResponse]:
        """One response per request, in the same order. Never raises for a per-row failure."""
        ...
