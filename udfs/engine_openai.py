"""Engine for any OpenAI-compatible `/v1/chat/completions` server (OpenAI, vllm serve, ...).

Per request: bounded concurrency across the batch, a request timeout, retries with exponential
backoff + jitter on 429 / 5xx / timeouts / dropped connections (a `Retry-After` header, in
seconds or as an HTTP date, sets the wait), and structured output through
`response_format={"type": "json_schema", ...}`. Every failure ends as `LLMResponse.error`.

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

from webscale_rl.udfs.llm_engine import LLMParams, resolve_api_key, sampling_for
from webscale_rl.udfs.llm_types import LLMRequest, LLMResponse

log = logging.getLogger(__name__)

# Errors worth another try: the server or the network may recover.
_RETRY_EXCEPTIONS = (
    requests.Timeout,
    requests.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
)
_ERROR_SNIPPET_CHARS = 200


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
        self._pool = ThreadPoolExecutor(params.max_concurrency, thread_name_prefix="openai-engine")

    def __repr__(self) -> str:
        # Explicit so the key attribute can never show up in a repr or a traceback's locals dump.
        return f"OpenAIEngine(model={self.model!r}, url={self._url!r})"

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
            outcome = self._attempt(request.request_id, body)
            if isinstance(outcome, LLMResponse):
                return outcome
            if attempt + 1 == attempts:
                return _error(
                    request.request_id, f"{outcome.reason}: gave up after {attempts} attempts"
                )
            wait = self._wait_s(attempt, outcome.retry_after_s)
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
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        try:
            resp = self._session.post(
                self._url, json=body, headers=headers, timeout=self._params.timeout_s
            )
        except requests.Timeout:
            return _Retry("timeout")
        except _RETRY_EXCEPTIONS as e:
            return _Retry(f"connection_error: {type(e).__name__}")
        except requests.RequestException as e:
            return _error(request_id, self._scrub(f"request_error: {type(e).__name__}: {e}"))
        code = resp.status_code
        if code == 429 or code >= 500:
            return _Retry(f"http_{code}", parse_retry_after(resp.headers.get("Retry-After")))
        if code >= 400:
            snippet = resp.text[:_ERROR_SNIPPET_CHARS]
            return _error(request_id, self._scrub(f"http_{code}: {snippet}"))
        return parse_completion(request_id, resp.text)

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


def build_body(request: LLMRequest, params: LLMParams) -> dict:
    """The JSON body of one chat-completions call."""
    sampling = sampling_for(request, params)
    body = {
        "model": params.model,
        "messages": request.messages,
        "temperature": sampling["temperature"],
        "top_p": sampling["top_p"],
        "max_tokens": sampling["max_tokens"],
    }
    if sampling["seed"] is not None:
        body["seed"] = sampling["seed"]
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


def parse_completion(request_id: str, body: str) -> LLMResponse:
    """Map a chat-completions response body to an LLMResponse; anything malformed is an error."""
    try:
        data = json.loads(body)
    except ValueError:
        return _error(request_id, "bad_response: body is not JSON")
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
