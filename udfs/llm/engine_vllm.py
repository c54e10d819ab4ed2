"""In-process vLLM engine: one `vllm.LLM` per Python worker, batched `LLM.chat` calls.

Structured output: vLLM >= 0.10.2 takes `SamplingParams(structured_outputs=
StructuredOutputsParams(json=schema))`; older releases took `guided_decoding=
GuidedDecodingParams(json=schema)` (removed in 0.12). Both live in `vllm.sampling_params`; we
pick whichever exists and refuse to start on a vLLM with neither, because running
unconstrained would silently produce unparseable answers.

Prompts that do not fit `max_model_len - max_tokens` are answered with a `prompt_too_long`
error row instead of being sent, so one huge web page cannot fail a whole batch.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence

from webscale_rl.errors import ConfigError
from webscale_rl.udfs.llm.engine import LLMParams, sampling_for
from webscale_rl.udfs.llm.interface import LLMRequest, LLMResponse

log = logging.getLogger(__name__)

# One LLM per set of load-time arguments per process: two stages with different sampling
# settings share the model instead of loading it twice onto the same GPU.
_LLMS: dict[str, object] = {}
_LLMS_LOCK = threading.Lock()


class VLLMEngine:
    name = "vllm"

    def __init__(self, params: LLMParams):
        if params.engine != "vllm":
            raise ValueError(f"VLLMEngine needs engine='vllm', got {params.engine!r}")
        self.model = params.model
        self._params = params
        vllm = _import_vllm()
        self._schema_kwarg, self._schema_cls = structured_output_api(
            importlib.import_module("vllm.sampling_params")
        )
        self._sampling_cls = vllm.SamplingParams
        self._llm = _shared_llm(vllm, params)
        self._tokenizer = self._llm.get_tokenizer()
        self._max_model_len = params.max_model_len or _model_max_len(self._llm)

    def generate(self, requests: Sequence[LLMRequest]) -> list[LLMResponse]:
        out: list[LLMResponse | None] = [None] * len(requests)
        todo: list[int] = []
        for i, request in enumerate(requests):
            too_long = self._check_length(request)
            if too_long is not None:
                out[i] = too_long
            else:
                todo.append(i)
        if todo:
            for i, response in zip(todo, self._run([requests[i] for i in todo]), strict=True):
                out[i] = response
        return out

    def sampling_params(self, request: LLMRequest):
        s = sampling_for(request, self._params)
        kwargs = {
            "temperature": s["temperature"],
            "top_p": s["top_p"],
            "max_tokens": s["max_tokens"],
            "seed": s["seed"],
            # llm.extra_body holds server-specific sampling fields (repetition_penalty, top_k,
            # min_p, ...); in process they are SamplingParams arguments.
            **s.get("extra_body", {}),
        }
        for name in ("presence_penalty", "frequency_penalty"):
            if name in s:
                kwargs[name] = s[name]
        if request.json_schema is not None:
            kwargs[self._schema_kwarg] = self._schema_cls(json=request.json_schema)
        return self._sampling_cls(**kwargs)

    def _check_length(self, request: LLMRequest) -> LLMResponse | None:
        if not self._max_model_len:
            return None
        max_tokens = sampling_for(request, self._params)["max_tokens"]
        budget = self._max_model_len - max_tokens
        n = count_prompt_tokens(self._tokenizer, request.messages)
        if n <= budget:
            return None
        return LLMResponse(
            request_id=request.request_id,
            text=None,
            prompt_tokens=n,
            error=f"prompt_too_long: {n} prompt tokens > {budget} "
            f"(max_model_len {self._max_model_len} - max_tokens {max_tokens})",
        )

    def _run(self, requests: Sequence[LLMRequest]) -> list[LLMResponse]:
        try:
            return self._chat(requests)
        except Exception as e:  # noqa: BLE001 - decide below whether it was one bad row
            if len(requests) == 1:
                raise
            log.warning("vLLM batch of %d failed (%s); retrying row by row", len(requests), e)
        return self._run_one_by_one(requests)

    def _run_one_by_one(self, requests: Sequence[LLMRequest]) -> list[LLMResponse]:
        # A row vLLM rejects (e.g. a schema the grammar backend cannot compile) becomes an
        # error row; if every row fails, the engine itself is broken and the task should fail.
        out, last_error = [], None
        for request in requests:
            try:
                out.extend(self._chat([request]))
            except Exception as e:  # noqa: BLE001
                last_error = e
                out.append(LLMResponse(request.request_id, None, error=f"engine_error: {e}"))
        if last_error is not None and all(r.error for r in out):
            raise last_error
        return out

    def _chat(self, requests: Sequence[LLMRequest]) -> list[LLMResponse]:
        outputs = self._llm.chat(
            [r.messages for r in requests],
            sampling_params=[self.sampling_params(r) for r in requests],
            use_tqdm=False,
        )
        return [to_response(r.request_id, o) for r, o in zip(requests, outputs, strict=True)]


def structured_output_api(sampling_params_module) -> tuple[str, type]:
    """(SamplingParams keyword, params class) for JSON-schema decoding on this vLLM."""
    cls = getattr(sampling_params_module, "StructuredOutputsParams", None)
    if cls is not None:
        return "structured_outputs", cls
    cls = getattr(sampling_params_module, "GuidedDecodingParams", None)
    if cls is not None:
        return "guided_decoding", cls
    raise ConfigError(
        "this vLLM has neither StructuredOutputsParams nor GuidedDecodingParams in "
        "vllm.sampling_params, so JSON-schema answers cannot be enforced; install vllm>=0.10"
    )


def count_prompt_tokens(tokenizer, messages: list[dict]) -> int:
    """Tokens of the prompt as the model sees it (chat template + generation prompt)."""
    try:
        ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    except Exception:  # noqa: BLE001 - no chat template: count the raw text
        return len(tokenizer.encode("\n".join(str(m.get("content", "")) for m in messages)))
    if isinstance(ids, Mapping):  # newer transformers may return a BatchEncoding
        ids = ids["input_ids"]
    return len(ids)


def to_response(request_id: str, output) -> LLMResponse:
    """Map a vLLM RequestOutput to an LLMResponse."""
    if not output.outputs:
        return LLMResponse(request_id, None, error="empty_output")
    completion = output.outputs[0]
    return LLMResponse(
        request_id=request_id,
        text=completion.text,
        prompt_tokens=len(output.prompt_token_ids or ()),
        completion_tokens=len(completion.token_ids or ()),
        finish_reason=completion.finish_reason,
    )


def llm_kwargs(params: LLMParams) -> dict:
    """Load-time arguments of `vllm.LLM`: the named settings, then `llm.vllm_kwargs` (dtype,
    enforce_eager, max_num_seqs, quantization, kv_cache_dtype, ...; on a CPU build
    `dtype: float32, enforce_eager: true` skips minutes of graph compilation)."""
    kwargs = {
        "model": params.model,
        "tensor_parallel_size": params.tensor_parallel_size,
        "gpu_memory_utilization": params.gpu_memory_utilization,
        "enable_prefix_caching": params.enable_prefix_caching,
    }
    if params.max_model_len is not None:
        kwargs["max_model_len"] = params.max_model_len
    if params.seed is not None:
        kwargs["seed"] = params.seed
    return kwargs | params.vllm_kwargs


def clear_llm_cache() -> None:
    """Drop cached LLMs (tests)."""
    with _LLMS_LOCK:
        _LLMS.clear()


def _shared_llm(vllm, params: LLMParams):
    kwargs = llm_kwargs(params)
    key = json.dumps(kwargs, sort_keys=True, default=str)  # vllm_kwargs may hold dicts
    with _LLMS_LOCK:
        llm = _LLMS.get(key)
        if llm is None:
            if _LLMS:
                log.warning("loading a second vLLM model in one process: %s", kwargs)
            _pin_spark_gpus()
            log.info("loading vLLM model %s", kwargs)
            llm = vllm.LLM(**kwargs)
            _LLMS[key] = llm
        return llm


def _import_vllm():
    try:
        return importlib.import_module("vllm")
    except ImportError as e:
        raise ConfigError(
            f"llm.engine='vllm' needs the vllm package on the workers ({e}); "
            "install webscale-rl[vllm] on a GPU cluster"
        ) from None


def _model_max_len(llm) -> int | None:
    # Where vLLM keeps the resolved context length; absent on some versions -> no check.
    config = getattr(getattr(llm, "llm_engine", None), "model_config", None)
    return getattr(config, "max_model_len", None)


def _pin_spark_gpus() -> None:
    """Inside a Spark task with GPU resources, make CUDA see only the task's GPUs."""
    if os.environ.get("CUDA_VISIBLE_DEVICES"):
        return
    try:
        from pyspark import TaskContext
    except ImportError:
        return
    ctx = TaskContext.get()
    gpus = ctx.resources().get("gpu") if ctx is not None else None
    if gpus is not None and gpus.addresses:
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(gpus.addresses)
