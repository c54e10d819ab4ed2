"""Test double: a stand-in `vllm` package, because real vLLM needs a GPU this machine lacks.

`install(monkeypatch, api)` puts modules named `vllm` and `vllm.sampling_params` on
sys.modules. `api` picks which structured-output API the stand-in has:

  "current"   StructuredOutputsParams; SamplingParams(structured_outputs=...)  (vLLM >= 0.10.2)
  "previous"  GuidedDecodingParams; SamplingParams(guided_decoding=...)        (vLLM < 0.12)
  "none"      neither (an old or broken vLLM)

Like the real SamplingParams, the stand-in rejects keywords it does not know, so passing the
wrong-era keyword fails. The stand-in LLM records its constructor arguments and every chat()
call; its tokenizer counts whitespace-separated words plus 3 template tokens per message.
Its answer is JSON echoing the schema's property names, so tests can see the schema arrived.
"""

from __future__ import annotations

import json
import sys
import types
from dataclasses import dataclass, field


@dataclass
class Recorder:
    llm_kwargs: list[dict] = field(default_factory=list)
    chat_calls: list[dict] = field(default_factory=list)


@dataclass
class CompletionOutput:
    text: str
    token_ids: list[int]
    finish_reason: str


@dataclass
class RequestOutput:
    prompt_token_ids: list[int]
    outputs: list[CompletionOutput]


# Sampling keywords of the real SamplingParams the stand-in accepts besides the basic four.
SAMPLING_EXTRAS = {
    "presence_penalty",
    "frequency_penalty",
    "repetition_penalty",
    "top_k",
    "min_p",
}


class FakeTokenizer:
    TEMPLATE_TOKENS_PER_MESSAGE = 3

    def apply_chat_template(self, messages, tokenize=True, add_generation_prompt=True):
        n = sum(len(m["content"].split()) + self.TEMPLATE_TOKENS_PER_MESSAGE for m in messages)
        return list(range(n))

    def encode(self, text):
        return list(range(len(text.split())))


class _SchemaParams:
    def __init__(self, json=None, **other):  # noqa: A002 - vLLM's own keyword
        self.json = json
        self.other = other


def install(monkeypatch, api: str = "current") -> Recorder:
    if api not in ("current", "previous", "none"):
        raise ValueError(f"unknown api {api!r}")
    rec = Recorder()
    schema_kw = {"current": "structured_outputs", "previous": "guided_decoding"}.get(api)

    class SamplingParams:
        def __init__(self, *, temperature=1.0, top_p=1.0, max_tokens=16, seed=None, **extra):
            unknown = set(extra) - {schema_kw, *SAMPLING_EXTRAS}
            if unknown:
                raise TypeError(f"SamplingParams got unexpected keyword(s) {sorted(unknown)}")
            self.temperature, self.top_p, self.max_tokens, self.seed = (
                temperature,
                top_p,
                max_tokens,
                seed,
            )
            self.schema_params = extra.get(schema_kw)
            self.extras = {k: v for k, v in extra.items() if k in SAMPLING_EXTRAS}

    class LLM:
        def __init__(self, **kwargs):
            rec.llm_kwargs.append(kwargs)
            self._tokenizer = FakeTokenizer()

        def get_tokenizer(self):
            return self._tokenizer

        def chat(self, messages, sampling_params=None, use_tqdm=True, **kwargs):
            rec.chat_calls.append({"messages": messages, "sampling_params": sampling_params})
            return [self._answer(m, sp) for m, sp in zip(messages, sampling_params, strict=True)]

        def _answer(self, conversation, sp):
            schema = sp.schema_params.json if sp.schema_params is not None else None
            keys = sorted((schema or {}).get("properties", {}))
            text = json.dumps({k: "x" for k in keys}) if schema else "free text answer"
            prompt = self._tokenizer.apply_chat_template(conversation)
            return RequestOutput(
                prompt_token_ids=prompt,
                outputs=[CompletionOutput(text, list(range(len(text.split()))), "stop")],
            )

    sampling_module = types.ModuleType("vllm.sampling_params")
    sampling_module.__doc__ = "Test double of vllm.sampling_params."
    sampling_module.SamplingParams = SamplingParams
    if api == "current":
        sampling_module.StructuredOutputsParams = type(
            "StructuredOutputsParams", (_SchemaParams,), {}
        )
    elif api == "previous":
        sampling_module.GuidedDecodingParams = type("GuidedDecodingParams", (_SchemaParams,), {})

    vllm_module = types.ModuleType("vllm")
    vllm_module.__doc__ = "Test double of vllm (real vLLM needs a GPU)."
    vllm_module.__version__ = f"0.0.0+fake-{api}"
    vllm_module.LLM = LLM
    vllm_module.SamplingParams = SamplingParams
    vllm_module.sampling_params = sampling_module

    monkeypatch.setitem(sys.modules, "vllm", vllm_module)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", sampling_module)
    return rec
