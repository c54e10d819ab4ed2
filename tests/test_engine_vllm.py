"""VLLMEngine against a stand-in `vllm` package (tests/fakes/fake_vllm.py).

The stand-in exists because real vLLM needs a GPU, which this machine and CI do not have. It
checks what we pass: the LLM's load arguments, which SamplingParams keyword carries the JSON
schema, and what reaches chat().
"""

import json
import sys

import pytest
from fakes import fake_vllm

from webscale_rl.errors import ConfigError
from webscale_rl.udfs.llm import engine as llm_engine
from webscale_rl.udfs.llm import engine_vllm
from webscale_rl.udfs.llm.engine import LLMParams
from webscale_rl.udfs.llm.interface import LLMRequest

SCHEMA = {
    "type": "object",
    "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
    "required": ["question", "answer"],
}


@pytest.fixture(autouse=True)
def fresh_caches(monkeypatch):
    # Never pin real GPUs from a test, and never reuse an LLM from another test's stand-in.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    engine_vllm.clear_llm_cache()
    llm_engine.clear_engine_cache()
    yield
    engine_vllm.clear_llm_cache()
    llm_engine.clear_engine_cache()


def params(**kw) -> LLMParams:
    base = dict(engine="vllm", model="org/some-model", max_model_len=64, seed=7)
    return LLMParams(**(base | kw))


def req(rid: str, words: int = 5, schema=SCHEMA, max_tokens: int = 16) -> LLMRequest:
    return LLMRequest(
        request_id=rid,
        task="generate",
        messages=[{"role": "user", "content": " ".join(["w"] * words)}],
        json_schema=schema,
        max_tokens=max_tokens,
    )


def test_current_api_schema_reaches_sampling_params(monkeypatch):
    rec = fake_vllm.install(monkeypatch, "current")
    engine = llm_engine.get_engine(params())
    out = engine.generate([req("a"), req("b", schema=None)])

    [call] = rec.chat_calls
    sp_a, sp_b = call["sampling_params"]
    assert type(sp_a.schema_params).__name__ == "StructuredOutputsParams"
    assert sp_a.schema_params.json == SCHEMA
    assert sp_b.schema_params is None
    assert (sp_a.max_tokens, sp_a.temperature, sp_a.seed) == (16, 0.0, 7)
    assert json.loads(out[0].text) == {"answer": "x", "question": "x"}
    assert out[0].prompt_tokens == 5 + 3
    assert out[0].completion_tokens == len(out[0].text.split())
    assert out[0].finish_reason == "stop" and out[0].error is None


def test_llm_load_arguments_and_one_llm_per_process(monkeypatch):
    rec = fake_vllm.install(monkeypatch, "current")
    p = params(tensor_parallel_size=2, gpu_memory_utilization=0.8, enable_prefix_caching=False)
    engine = llm_engine.get_engine(p)
    assert llm_engine.get_engine(p) is engine
    # A different sampling setting is another engine but must share the loaded model.
    llm_engine.get_engine(p.model_copy(update={"temperature": 0.5}))
    assert rec.llm_kwargs == [
        {
            "model": "org/some-model",
            "tensor_parallel_size": 2,
            "gpu_memory_utilization": 0.8,
            "enable_prefix_caching": False,
            "max_model_len": 64,
            "seed": 7,
        }
    ]


def test_previous_api_uses_guided_decoding(monkeypatch):
    rec = fake_vllm.install(monkeypatch, "previous")
    out = engine_vllm.VLLMEngine(params()).generate([req("a")])
    sp = rec.chat_calls[0]["sampling_params"][0]
    assert type(sp.schema_params).__name__ == "GuidedDecodingParams"
    assert sp.schema_params.json == SCHEMA
    assert out[0].error is None


def test_vllm_without_structured_output_fails_at_creation(monkeypatch):
    rec = fake_vllm.install(monkeypatch, "none")
    with pytest.raises(ConfigError, match="StructuredOutputsParams"):
        engine_vllm.VLLMEngine(params())
    assert rec.llm_kwargs == []  # failed before loading a model


def test_too_long_prompt_is_an_error_row_and_not_sent(monkeypatch):
    rec = fake_vllm.install(monkeypatch, "current")
    engine = engine_vllm.VLLMEngine(params(max_model_len=64))
    # budget = 64 - 16 = 48 prompt tokens; 46 words + 3 template tokens = 49 does not fit.
    out = engine.generate([req("fits", words=45), req("long", words=46), req("ok", words=1)])
    assert [o.error is None for o in out] == [True, False, True]
    assert out[1].error.startswith("prompt_too_long")
    assert out[1].prompt_tokens == 49
    sent = [c["messages"] for c in rec.chat_calls]
    assert len(sent) == 1 and len(sent[0]) == 2  # only the two that fit were sent


def test_all_too_long_sends_nothing(monkeypatch):
    rec = fake_vllm.install(monkeypatch, "current")
    engine = engine_vllm.VLLMEngine(params(max_model_len=32))
    out = engine.generate([req("x", words=100)])
    assert out[0].error.startswith("prompt_too_long")
    assert rec.chat_calls == []


def test_one_bad_row_does_not_fail_the_batch(monkeypatch):
    fake_vllm.install(monkeypatch, "current")
    engine = engine_vllm.VLLMEngine(params())
    real_chat = engine._llm.chat

    def chat(messages, sampling_params=None, **kw):
        if any(sp.max_tokens == 13 for sp in sampling_params):
            raise ValueError("grammar backend cannot compile schema")
        return real_chat(messages, sampling_params, **kw)

    engine._llm.chat = chat
    out = engine.generate([req("a"), req("bad", max_tokens=13), req("c")])
    assert [o.error is None for o in out] == [True, False, True]
    assert out[1].error.startswith("engine_error")


def test_missing_vllm_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ConfigError, match="needs the vllm package"):
        engine_vllm.VLLMEngine(params())


def test_vllm_kwargs_reach_the_llm_and_key_the_shared_model(monkeypatch):
    rec = fake_vllm.install(monkeypatch, "current")
    extra = {"dtype": "float32", "enforce_eager": True, "max_num_seqs": 4, "hf_overrides": {"a": 1}}
    p = params(vllm_kwargs=extra)
    llm_engine.get_engine(p)
    llm_engine.get_engine(p.model_copy(update={"temperature": 0.5}))  # same load arguments
    llm_engine.get_engine(p.model_copy(update={"vllm_kwargs": {"dtype": "float16"}}))
    assert [k.get("dtype") for k in rec.llm_kwargs] == ["float32", "float16"]
    assert rec.llm_kwargs[0]["enforce_eager"] is True and rec.llm_kwargs[0]["max_num_seqs"] == 4
    assert rec.llm_kwargs[0]["model"] == "org/some-model"


def test_vllm_kwargs_may_not_shadow_named_settings():
    with pytest.raises(ValueError, match="tensor_parallel_size"):
        params(vllm_kwargs={"tensor_parallel_size": 2})


def test_penalties_and_extra_body_become_sampling_params(monkeypatch):
    rec = fake_vllm.install(monkeypatch, "current")
    p = params(presence_penalty=0.5, frequency_penalty=0.2, extra_body={"repetition_penalty": 1.1})
    engine_vllm.VLLMEngine(p).generate([req("a")])
    sp = rec.chat_calls[0]["sampling_params"][0]
    assert sp.extras == {
        "presence_penalty": 0.5,
        "frequency_penalty": 0.2,
        "repetition_penalty": 1.1,
    }
    # unset, nothing is sent: vLLM's own defaults apply
    engine_vllm.VLLMEngine(params()).generate([req("b")])
    assert rec.chat_calls[1]["sampling_params"][0].extras == {}
