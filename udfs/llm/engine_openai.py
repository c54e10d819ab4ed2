"""Engine for any OpenAI-compatible `/v1/chat/completions` server (OpenAI, vllm serve, ...).

Per request: a deadline, retries with exponential backoff + jitter on 429 / 5xx / timeouts /
dropped connections (a `Retry-After` header, in seconds or as an HTTP date, sets the wait), and
structured output through `response_format={"type": "json_schema", ...}`. Every failure ends
as `LLMResponse.error`.

In flight across the batch: never more than the server's slots when it reports them, halved on
timeouts/429/503 and grown back on successes (`http_concurrency`). Replies stream (server-sent
events, usage from the last event): when a request passes its deadline the engine closes the
connection, the server stops generating it at its next write (llama.cpp and vLLM both do), and
its retry first waits `cancel_grace_s` for that, so it never runs beside a forgotten first copy. With `llm.stream=false` a timed-out request may still run
on the server, so its retry first waits `timeout_s` more.

The API key is sent only as the Bearer header. It is never logged, and it is scrubbed from any
error text (a misbehaving proxy may echo request headers back in an error body).
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import requests
from requests.adapters import HTTPAdapter

from webscale_rl.udfs.llm.engine import LLMParams, resolve_api_key, sampling_for
from webscale_rl.udfs.llm.http_concurrency import AdaptiveLimit, server_slots
from webscale_rl.udfs.llm.interface import LLMRequest, LLMResponse

log = logging.getLogger(__name__)

# Errors worth another try: the server or the network may recover.
_RETRY_EXCEPTIONS = (
    requests.Timeout,
    requests.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
)
_ERROR_SNIPPET_CHARS = 200
# Signs that the server has more than it can take: fewer requests in flight next.
_OVERLOAD = ("timeout", "http_429", "http_503")


@dataclass
class _Retry:
    """One failed attempt that may succeed if repeated."""

    reason: str
    retry_after_s: float | None = None


class OpenAIEngine:
    name = "openai"

    def __init__(self, params: LLMParams):
        if params.engine != "openai":
            raise ValueError(f"OpenAIEngine needs engine='openai', got {params.engine!r}")
        self.model = params.model
        self._params = params
        self._url = params.base_url.rstrip("/") + "/chat/completions"
        self._api_key = resolve_api_key(params)
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_maxsize=params.max_concurrency)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self.server_slots = server_slots(params.base_url, self._headers())
        ceiling = min(params.max_concurrency, self.server_slots or params.max_concurrency)
        self.limit = AdaptiveLimit(ceiling)
        self._pool = ThreadPoolExecutor(ceiling, thread_name_prefix="openai-engine")

    def __repr__(self) -> str:
        # Explicit so the key attribute can never show up in a repr or a traceback's locals dump.
        return f"OpenAIEngine(model={self.model!r}, url={self._url!r})"

    def _headers(self) -> dict:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def generate(self, requests_: Sequence[LLMRequest]) -> list[LLMResponse]:
        return list(self._pool.map(self._generate_one, requests_))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._session.close()

    def _generate_one(self, request: LLMRequest) -> LLMResponse:
        try:
            return self._with_retries(request)
        except Exception as e:  # noqa: BLE001 - a per-row failure must not kill the task
            return _error(request.request_id, self._scrub(f"client_error: {type(e).__name__}: {e}"))

    def _with_retries(self, request: LLMRequest) -> LLMResponse:
        body = build_body(request, self._params)
        attempts = self._params.max_retries + 1
        for attempt in range(attempts):
            with self.limit.held() as report:
                outcome = self._attempt(request.request_id, body)
                if isinstance(outcome, LLMResponse):
                    report(False if outcome.error is None else None)
                else:
                    report(outcome.reason.startswith(_OVERLOAD) or None)
            if isinstance(outcome, LLMResponse):
                return outcome
            if attempt + 1 == attempts:
                return _error(
                    request.request_id, f"{outcome.reason}: gave up after {attempts} attempts"
                )
            wait = self._wait_s(attempt, outcome.retry_after_s)
            if outcome.reason == "timeout":
                # The server may still be working on the abandoned copy: a streamed one until it
                # notices the closed connection, an unstreamed one until it finishes.
                grace = (
                    self._params.cancel_grace_s if self._params.stream else self._params.timeout_s
                )
                wait = max(wait, grace)
            log.warning(
                "request %s: %s; retry %d/%d in %.2fs",
                request.request_id,
                outcome.reason,
                attempt + 1,
                self._params.max_retries,
                wait,
            )
            time.sleep(wait)
        raise AssertionError("unreachable")

    def _attempt(self, request_id: str, body: dict) -> LLMResponse | _Retry:
        deadline = time.monotonic() + self._params.timeout_s
        try:
            resp = self._session.post(
                self._url,
                json=body,
                headers=self._headers(),
                timeout=self._params.timeout_s,
                stream=self._params.stream,
            )
        except requests.Timeout:
            return _Retry("timeout")
        except _RETRY_EXCEPTIONS as e:
            return _Retry(f"connection_error: {type(e).__name__}")
        except requests.RequestException as e:
            return _error(request_id, self._scrub(f"request_error: {type(e).__name__}: {e}"))
        # Leaving the block closes the connection; a server streaming a reply then stops.
        with resp:
            code = resp.status_code
            if code == 429 or code >= 500:
                return _Retry(f"http_{code}", parse_retry_after(resp.headers.get("Retry-After")))
            if code >= 400:
                snippet = resp.text[:_ERROR_SNIPPET_CHARS]
                return _error(request_id, self._scrub(f"http_{code}: {snippet}"))
            if "text/event-stream" in resp.headers.get("Content-Type", ""):
                return self._read_stream(request_id, resp, deadline)
            try:
                return parse_completion(request_id, resp.content.decode("utf-8", "replace"))
            except _RETRY_EXCEPTIONS as e:
                return _Retry(_read_failure(e))

    def _read_stream(self, request_id: str, resp, deadline: float) -> LLMResponse | _Retry:
        events = []
        # Server-sent events are UTF-8 (the spec says so); without a charset in the header
        # requests would read them as Latin-1 and garble every non-ASCII character.
        resp.encoding = "utf-8"
        try:
            for line in resp.iter_lines(decode_unicode=True):
                if time.monotonic() > deadline:
                    return _Retry("timeout")
                if not line or not line.startswith("data:"):
                    continue  # comments, keep-alives, event names
                data = line[len("data:") :].strip()
                if data == "[DONE]":
                    break
                events.append(data)
        except _RETRY_EXCEPTIONS as e:
            return _Retry(_read_failure(e))
        return parse_stream(request_id, events)

    def _wait_s(self, attempt: int, retry_after_s: float | None) -> float:
        cap = self._params.backoff_max_s
        if retry_after_s is not None:
            # The server said when to come back; a little jitter spreads the herd after it.
            return min(retry_after_s, cap) + random.uniform(0, 0.1)
        # "Equal jitter": at least half the exponential step, so waits never collapse to zero.
        step = min(self._params.backoff_base_s * 2**attempt, cap)
        return step / 2 + random.uniform(0, step / 2)

    def _scrub(self, text: str) -> str:
        if self._api_key:
            text = text.replace(self._api_key, "***")
        return text


def _read_failure(error: Exception) -> str:
    # requests reports a read timeout inside a streamed body as a ConnectionError.
    return (
        "timeout"
        if "timed out" in str(error).lower()
        else f"connection_error: {type(error).__name__}"
    )


def build_body(request: LLMRequest, params: LLMParams) -> dict:
    """The JSON body of one chat-completions call."""
    sampling = sampling_for(request, params)
    body = {
        **params.extra_body,
        "model": params.model,
        "messages": request.messages,
        "temperature": sampling["temperature"],
        "top_p": sampling["top_p"],
        "max_tokens": sampling["max_tokens"],
    }
    if sampling["seed"] is not None:
        body["seed"] = sampling["seed"]
    for name in ("presence_penalty", "frequency_penalty"):
        if name in sampling:
            body[name] = sampling[name]
    if params.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    if request.json_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": schema_name(request.task),
                "schema": request.json_schema,
                "strict": True,
            },
        }
    return body


def schema_name(task: str) -> str:
    """OpenAI requires [a-zA-Z0-9_-]{1,64} for a response-format name."""
    name = re.sub(r"[^a-zA-Z0-9_-]", "_", task)[:64]
    return name or "answer"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def parse_stream(request_id: str, events: list[str]) -> LLMResponse:
    """Join the `data:` events of a streamed chat completion into one LLMResponse."""
    parts, finish_reason, usage, refusal, saw_choice = [], None, {}, False, False
    for event in events:
        try:
            chunk = json.loads(event)
        except ValueError:
            return _error(request_id, "bad_response: an event is not JSON")
        if not isinstance(chunk, dict):
            return _error(request_id, "bad_response: an event is not a JSON object")
        if chunk.get("error"):
            return _error(request_id, f"stream_error: {str(chunk['error'])[:_ERROR_SNIPPET_CHARS]}")
        if isinstance(chunk.get("usage"), dict):
            usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            saw_choice = True
            delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
            if isinstance(delta.get("content"), str):
                parts.append(delta["content"])
            refusal = refusal or bool(delta.get("refusal"))
            finish_reason = choice.get("finish_reason") or finish_reason
    if not saw_choice:
        return _error(request_id, "bad_response: no choices")
    message = {"content": "".join(parts) if parts or not refusal else None, "refusal": refusal}
    data = {"choices": [{"message": message, "finish_reason": finish_reason}], "usage": usage}
    return completion_response(request_id, data)


def parse_completion(request_id: str, body: str) -> LLMResponse:
    """Map a chat-completions response body to an LLMResponse; anything malformed is an error."""
    try:
        data = json.loads(body)
    except ValueError:
        return _error(request_id, "bad_response: body is not JSON")
    return completion_response(request_id, data)


def completion_response(request_id: str, data) -> LLMResponse:
    """A decoded chat-completions object -> LLMResponse."""
    if not isinstance(data, dict):
        return _error(request_id, "bad_response: body is not a JSON object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return _error(request_id, "bad_response: no choices")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    content = message.get("content")
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    finish_reason = choice.get("finish_reason")
    if not isinstance(content, str):
        reason = "refusal" if message.get("refusal") else "empty_content"
        return LLMResponse(request_id, None, finish_reason=finish_reason, error=reason)
    return LLMResponse(
        request_id=request_id,
        text=content,
        prompt_tokens=_int(usage.get("prompt_tokens")),
        completion_tokens=_int(usage.get("completion_tokens")),
        finish_reason=finish_reason,
    )


def _int(value) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def _error(request_id: str, message: str) -> LLMResponse:
    return LLMResponse(request_id=request_id, text=None, error=message)
