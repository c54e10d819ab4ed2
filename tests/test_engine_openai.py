"""OpenAIEngine against a scripted local server (tests/fakes/fake_openai_server.py)."""

import json
import logging

import pytest
from fakes.fake_openai_server import FakeOpenAIServer

from webscale_rl.udfs.llm.engine import LLMParams, describe
from webscale_rl.udfs.llm.engine_openai import (
    OpenAIEngine,
    build_body,
    parse_retry_after,
    parse_stream,
)
from webscale_rl.udfs.llm.http_concurrency import AdaptiveLimit, server_root
from webscale_rl.udfs.llm.interface import LLMRequest

KEY_ENV = "WEBSCALE_TEST_OPENAI_KEY"
SECRET = "sk-test-5ecret-DO-NOT-LEAK-1234567890"
SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
    "additionalProperties": False,
}


@pytest.fixture
def server():
    with FakeOpenAIServer(hang_s=2.0) as s:
        yield s


@pytest.fixture
def engine(server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, SECRET)
    params = LLMParams(
        engine="openai",
        model="fake-model",
        base_url=server.base_url,
        api_key_env=KEY_ENV,
        max_concurrency=4,
        timeout_s=0.5,
        max_retries=2,
        backoff_base_s=0.05,
        cancel_grace_s=0.05,  # the fake server has nothing to cancel
    )
    eng = OpenAIEngine(params)
    yield eng
    eng.close()


def req(content: str, schema: dict | None = SCHEMA) -> LLMRequest:
    return LLMRequest(
        request_id=f"r-{content}",
        task="generate",
        messages=[{"role": "user", "content": content}],
        json_schema=schema,
    )


def test_valid_completion_maps_text_usage_and_finish_reason(engine, server):
    [r] = engine.generate([req("ok:1")])
    assert r.error is None
    assert json.loads(r.text) == {"answer": "ok"}
    assert (r.prompt_tokens, r.completion_tokens, r.finish_reason) == (11, 7, "stop")
    sent = server.bodies[0]
    assert sent["model"] == "fake-model"
    # streamed, so a request past its deadline can be cancelled by closing the connection
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "generate", "schema": SCHEMA, "strict": True},
    }


def test_free_text_request_sends_no_response_format(engine, server):
    engine.generate([req("ok:2", schema=None)])
    assert "response_format" not in server.bodies[0]


def test_429_retry_after_seconds_is_honoured(engine, server):
    [r] = engine.generate([req("429-once:1")])
    assert r.error is None
    hits = server.hits["429-once:1"]
    assert len(hits) == 2
    assert hits[1] - hits[0] >= 1.0  # the header said 1 s


def test_429_retry_after_http_date_is_honoured(engine, server):
    [r] = engine.generate([req("429-date-once:1")])
    assert r.error is None
    hits = server.hits["429-date-once:1"]
    assert len(hits) == 2
    assert hits[1] >= server.retry_after_dates["429-date-once"]


def test_500_then_success_is_retried(engine, server):
    [r] = engine.generate([req("500-once:1")])
    assert r.error is None
    assert len(server.hits["500-once:1"]) == 2


def test_persistent_500_becomes_error_after_all_retries(engine, server):
    [r] = engine.generate([req("500-always:1")])
    assert r.text is None
    assert r.error.startswith("http_500")
    assert len(server.hits["500-always:1"]) == 3  # 1 try + max_retries=2


def test_hang_past_timeout_becomes_timeout_error(engine, server):
    [r] = engine.generate([req("hang:1")])
    assert r.text is None
    assert r.error.startswith("timeout")
    assert len(server.hits["hang:1"]) == 3


@pytest.mark.parametrize("scenario", ["garbage:1", "no-choices:1"])
def test_malformed_body_becomes_error(engine, scenario):
    [r] = engine.generate([req(scenario)])
    assert r.text is None
    assert r.error.startswith("bad_response")


def test_mixed_batch_keeps_order_and_isolates_failures(engine):
    batch = [req("ok:a"), req("garbage:b"), req("ok:c")]
    out = engine.generate(batch)
    assert [o.request_id for o in out] == [b.request_id for b in batch]
    assert [o.error is None for o in out] == [True, False, True]


def test_concurrency_is_bounded(server, monkeypatch):
    params = LLMParams(
        engine="openai", model="m", base_url=server.base_url, max_concurrency=2, timeout_s=5
    )
    eng = OpenAIEngine(params)
    out = eng.generate([req(f"slow:{i}") for i in range(6)])
    eng.close()
    assert all(o.error is None for o in out)
    assert 1 <= server.max_in_flight <= 2


def test_key_reaches_server_but_never_errors_or_logs(engine, server, caplog):
    caplog.set_level(logging.DEBUG)
    out = engine.generate([req("echo-auth-400:1"), req("500-always:2"), req("hang:2")])
    assert f"Bearer {SECRET}" in server.auth_headers
    assert all(o.error for o in out)
    assert out[0].error.startswith("http_400") and "***" in out[0].error
    for o in out:
        assert SECRET not in o.error
    assert caplog.records, "retries should have been logged"
    for rec in caplog.records:
        assert SECRET not in rec.getMessage()
    assert SECRET not in repr(engine)
    assert SECRET not in json.dumps(describe(engine._params))


def test_params_overrides_and_seed():
    params = LLMParams(engine="openai", model="m", max_tokens=64, temperature=0.7, seed=3)
    body = build_body(req("x"), params)
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["seed"]) == (
        64,
        0.7,
        1.0,
        3,
    )


def test_parse_retry_after():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past


def test_non_streaming_mode_reads_a_plain_body(server):
    params = LLMParams(engine="openai", model="m", base_url=server.base_url, stream=False)
    eng = OpenAIEngine(params)
    [r] = eng.generate([req("ok:plain")])
    eng.close()
    assert "stream" not in server.bodies[0]
    assert json.loads(r.text) == {"answer": "ok"} and r.completion_tokens == 7


def test_in_flight_never_exceeds_the_slots_the_server_reports():
    with FakeOpenAIServer(slots=2) as server:
        params = LLMParams(
            engine="openai", model="m", base_url=server.base_url, max_concurrency=8, timeout_s=5
        )
        eng = OpenAIEngine(params)
        out = eng.generate([req(f"slow:{i}") for i in range(6)])
        eng.close()
    assert eng.server_slots == 2
    assert all(o.error is None for o in out)
    assert server.max_in_flight <= 2 and eng.limit.max_in_flight <= 2


def test_server_without_slot_report_keeps_max_concurrency(engine):
    assert engine.server_slots is None and engine.limit.ceiling == 4


def test_overload_halves_the_limit_and_successes_grow_it_back():
    limit = AdaptiveLimit(8)
    for expected in (4, 2, 1, 1):
        limit.acquire()
        limit.release(overloaded=True)
        assert limit.limit == expected
    limit.acquire()
    limit.release(overloaded=None)  # a 400 or a bad body says nothing about load
    assert limit.limit == 1
    for _ in range(40):
        limit.acquire()
        limit.release(overloaded=False)
    assert limit.limit == 8  # back to the ceiling, never above it


def test_429_and_timeouts_lower_the_limit(server, monkeypatch):
    params = LLMParams(
        engine="openai",
        model="m",
        base_url=server.base_url,
        max_concurrency=4,
        timeout_s=0.5,
        max_retries=1,
        backoff_base_s=0.05,
        cancel_grace_s=0.05,  # the fake server has nothing to cancel
    )
    eng = OpenAIEngine(params)
    eng.generate([req("hang:limit")])
    eng.close()
    assert eng.limit.limit == 1  # two timeouts: 4 -> 2 -> 1


def test_penalties_and_extra_body_are_sent():
    params = LLMParams(
        engine="openai",
        model="m",
        presence_penalty=0.5,
        frequency_penalty=0.25,
        extra_body={"repeat_penalty": 1.1, "top_k": 40},
    )
    body = build_body(req("x"), params)
    assert (body["presence_penalty"], body["frequency_penalty"]) == (0.5, 0.25)
    assert (body["repeat_penalty"], body["top_k"]) == (1.1, 40)
    plain = build_body(req("x"), LLMParams(engine="openai", model="m"))
    assert not {"presence_penalty", "frequency_penalty", "repeat_penalty"} & set(plain)


@pytest.mark.parametrize("key", ["model", "messages", "response_format", "stream"])
def test_extra_body_may_not_replace_what_the_engine_sets(key):
    with pytest.raises(ValueError, match="extra_body may not set"):
        LLMParams(engine="openai", model="m", extra_body={key: "x"})


def test_parse_stream_joins_deltas_and_reads_usage():
    events = [
        json.dumps({"choices": [{"index": 0, "delta": {"role": "assistant", "content": None}}]}),
        json.dumps({"choices": [{"index": 0, "delta": {"content": '{"a": '}}]}),
        json.dumps(
            {"choices": [{"index": 0, "delta": {"content": "1}"}, "finish_reason": "stop"}]}
        ),
        json.dumps({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4}}),
    ]
    r = parse_stream("r", events)
    assert (r.text, r.finish_reason, r.prompt_tokens, r.completion_tokens) == (
        '{"a": 1}',
        "stop",
        9,
        4,
    )
    assert parse_stream("r", ["not json"]).error.startswith("bad_response")
    assert parse_stream("r", [json.dumps({"error": {"message": "boom"}})]).error.startswith(
        "stream_error"
    )
    assert parse_stream("r", []).error == "bad_response: no choices"


def test_server_root():
    assert server_root("http://h:8000/v1/") == "http://h:8000"
    assert server_root("https://api.example.com/serving-endpoints") == (
        "https://api.example.com/serving-endpoints"
    )


@pytest.mark.parametrize("stream", [True, False])
def test_non_ascii_replies_arrive_intact(stream):
    text = '{"answer": "Émile Nouguier, 1 280 m², π ≈ 3.14"}'
    with FakeOpenAIServer(responder=lambda body: text) as server:
        params = LLMParams(engine="openai", model="m", base_url=server.base_url, stream=stream)
        eng = OpenAIEngine(params)
        [r] = eng.generate([req("any")])
        eng.close()
    assert r.text == text
