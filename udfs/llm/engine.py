"""LLM engine parameters and the per-process engine factory.

A Spark UDF calls `get_engine(params)` for every batch. The first call in a Python worker
builds the engine (for vLLM: loads the model onto the GPU); later calls in the same worker
reuse it, so with `spark.python.worker.reuse=true` a model is loaded once per worker, not
once per batch.

Secrets: the config holds only the *names* of where a key lives (an env var, a Databricks
secret scope/key); the value is read inside the engine and never stored in the config, a log
line or an error message.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from webscale_rl.errors import ConfigError
from webscale_rl.udfs.llm.engine_rules import RuleEngineParams
from webscale_rl.udfs.llm.interface import Engine, LLMRequest

log = logging.getLogger(__name__)

ENGINES = ("none", "vllm", "openai", "simulated")
# Body keys the OpenAI engine writes itself; `extra_body` may not replace them.
RESERVED_BODY_KEYS = {"model", "messages", "response_format", "stream", "stream_options"}
# vllm.LLM arguments that have their own llm.* setting.
VLLM_NAMED_KWARGS = {
    "model",
    "tensor_parallel_size",
    "gpu_memory_utilization",
    "enable_prefix_caching",
    "max_model_len",
    "seed",
}


class LLMParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: RuleEngineParams = Field(
        default_factory=RuleEngineParams,
        description="Thresholds of the LLM-free rule engine ('none').",
    )
    engine: Literal["none", "vllm", "openai", "simulated"] = Field(
        "none",
        description="'none' = LLM-free rule engine; 'vllm' = in-process vLLM on the task's GPUs; "
        "'openai' = any OpenAI-compatible HTTP server; 'simulated' = timing double for benchmarks.",
    )
    model: str = Field(
        "", description="Model name (openai) or Hugging Face id / local path (vllm)."
    )
    base_url: str = Field(
        "https://api.openai.com/v1",
        description="OpenAI-compatible base URL including /v1, e.g. http://host:8000/v1 for vllm serve.",
    )
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="Name of the env var holding the API key (not the key)."
    )
    databricks_secret_scope: str | None = Field(
        None, description="Databricks secret scope of the API key; used instead of the env var."
    )
    databricks_secret_key: str | None = Field(
        None, description="Databricks secret key name of the API key (with the scope)."
    )
    max_concurrency: int = Field(
        8,
        ge=1,
        description="Most concurrent HTTP requests per Spark task. Never more than the server's "
        "parallel slots when it reports them (llama.cpp /props), shared among the stage's tasks; "
        "halved on timeouts/429/503 and grown back one at a time on successes.",
    )
    timeout_s: float = Field(
        120.0,
        gt=0,
        description="Deadline of one HTTP request, seconds. With `stream` the engine then closes "
        "the connection, which stops the server generating, so a retry never runs beside it.",
    )
    stream: bool = Field(
        True,
        description="openai: receive replies as server-sent events (usage from the last event). "
        "Lets a timed-out request be cancelled on the server; false for servers that cannot "
        "stream (a timed-out request may then run on there while its retry waits timeout_s).",
    )
    max_retries: int = Field(
        5, ge=0, description="Retries of one request on 429/5xx/timeout/connection errors."
    )
    cancel_grace_s: float = Field(
        1.0,
        ge=0,
        description="openai with `stream`: least wait before retrying a timed-out request. "
        "Closing the connection cancels it, but the server only notices at its next write or "
        "poll (llama.cpp: the next token), so a retry sent at once can briefly run beside it.",
    )
    backoff_base_s: float = Field(
        1.0, ge=0, description="Base of the exponential backoff between retries, seconds."
    )
    backoff_max_s: float = Field(
        60.0, ge=0, description="Cap on one backoff or Retry-After wait, seconds."
    )
    temperature: float | None = Field(
        None, ge=0, description="If set, overrides every request's temperature."
    )
    top_p: float | None = Field(
        None, gt=0, le=1, description="If set, overrides every request's top_p."
    )
    max_tokens: int | None = Field(
        None, ge=1, description="If set, overrides every request's max_tokens."
    )
    seed: int | None = Field(
        None, description="Sampling seed (and vLLM engine seed); a request's own seed wins."
    )
    presence_penalty: float | None = Field(
        None, ge=-2, le=2, description="If set, sent with every request (OpenAI API, vLLM)."
    )
    frequency_penalty: float | None = Field(
        None, ge=-2, le=2, description="If set, sent with every request (OpenAI API, vLLM)."
    )
    extra_body: dict[str, Any] = Field(
        default_factory=dict,
        description="Server-specific sampling fields: openai adds them to every request body "
        "(e.g. {repeat_penalty: 1.1, top_k: 40} for llama.cpp, {repetition_penalty: 1.1} for "
        "vllm serve); vllm passes them to SamplingParams.",
    )
    vllm_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="vLLM: more load-time arguments of vllm.LLM, e.g. {dtype: float16, "
        "enforce_eager: true, max_num_seqs: 64, quantization: awq, kv_cache_dtype: fp8, "
        "swap_space: 4}; the named llm.* settings (model, tensor_parallel_size, ...) stay "
        "where they are.",
    )
    tensor_parallel_size: int = Field(1, ge=1, description="vLLM: GPUs one model is split over.")
    max_model_len: int | None = Field(
        None, ge=16, description="vLLM: context length; None = the model's own."
    )
    gpu_memory_utilization: float = Field(
        0.90, gt=0, le=1, description="vLLM: fraction of GPU memory for weights + KV cache."
    )
    enable_prefix_caching: bool = Field(
        True, description="vLLM: reuse KV cache of shared prompt prefixes (few-shot demos)."
    )
    batch_size: int = Field(256, ge=1, description="Rows per engine call inside a UDF.")
    gpus_per_task: int = Field(
        0, ge=0, description="Spark task GPU resource (spark.task.resource.gpu.amount)."
    )
    journal_dir: str | None = Field(
        None,
        description="If set, finished responses are journaled here (local or /dbfs/... path) "
        "so task retries and re-runs never pay twice for a request.",
    )
    simulated_prompt_tokens_per_s: float = Field(
        50_000.0, gt=0, description="simulated: prompt tokens processed per second."
    )
    simulated_gen_tokens_per_s: float = Field(
        5_000.0, gt=0, description="simulated: generated tokens per second."
    )
    simulated_responder: str | None = Field(
        None,
        description="simulated: 'module:function' taking an LLMRequest and returning text; "
        "None = the rule engine's answers.",
    )
    simulated_counts_path: str | None = Field(
        None, description="simulated: file where per-request call counts are appended."
    )

    @model_validator(mode="after")
    def _check(self) -> LLMParams:
        if self.engine in ("vllm", "openai") and not self.model:
            raise ValueError(f"llm.model is required when llm.engine={self.engine!r}")
        reserved = sorted(set(self.extra_body) & RESERVED_BODY_KEYS)
        if reserved:
            raise ValueError(f"llm.extra_body may not set {reserved}: the engine sets them")
        named = sorted(set(self.vllm_kwargs) & VLLM_NAMED_KWARGS)
        if named:
            raise ValueError(f"llm.vllm_kwargs may not set {named}: use llm.<name> instead")
        if (self.databricks_secret_scope is None) != (self.databricks_secret_key is None):
            raise ValueError(
                "set both llm.databricks_secret_scope and llm.databricks_secret_key, or neither"
            )
        return self


def sampling_for(request: LLMRequest, params: LLMParams) -> dict:
    """The sampling values to send for one request: deployment-wide overrides win. Penalties
    and `extra_body` appear only when set, so they are recorded with the rows they shaped."""
    out = {
        "temperature": request.temperature if params.temperature is None else params.temperature,
        "top_p": request.top_p if params.top_p is None else params.top_p,
        "max_tokens": request.max_tokens if params.max_tokens is None else params.max_tokens,
        "seed": request.seed if request.seed is not None else params.seed,
    }
    return out | extra_sampling(params)


def extra_sampling(params) -> dict:
    """The optional sampling settings that are set (penalties, extra_body), by name."""
    out = {}
    for name in ("presence_penalty", "frequency_penalty"):
        if getattr(params, name, None) is not None:
            out[name] = getattr(params, name)
    if getattr(params, "extra_body", None):
        out["extra_body"] = dict(params.extra_body)
    return out


def api_key_source(params: LLMParams) -> str:
    """Where the API key is read from, for logs: a name, never the value."""
    if params.databricks_secret_scope:
        return f"databricks-secret:{params.databricks_secret_scope}/{params.databricks_secret_key}"
    return f"env:{params.api_key_env}"


def resolve_api_key(params: LLMParams) -> str | None:
    """The API key value, or None when none is configured (e.g. a local vllm serve)."""
    if params.databricks_secret_scope:
        return _read_databricks_secret(params.databricks_secret_scope, params.databricks_secret_key)
    return os.environ.get(params.api_key_env) or None


def _read_databricks_secret(scope: str, key: str) -> str:
    # databricks.sdk.runtime gives the notebook's dbutils on a cluster and an SDK-backed one
    # elsewhere; either way the value only lives in the caller's memory.
    try:
        from databricks.sdk.runtime import dbutils

        return dbutils.secrets.get(scope=scope, key=key)
    except Exception as e:  # noqa: BLE001 - any failure means "could not read the secret"
        raise ConfigError(
            f"could not read Databricks secret {scope}/{key} ({type(e).__name__}); "
            "check the scope/key names and the cluster's access to the scope"
        ) from None


def describe(params: LLMParams) -> dict:
    """Engine settings safe to log or record in MLflow (names of secrets, never values)."""
    d = params.model_dump()
    d["api_key_source"] = api_key_source(params)
    if params.engine != "openai":
        for k in ("base_url", "api_key_env", "databricks_secret_scope", "databricks_secret_key"):
            d.pop(k, None)
    return d


_CACHE: dict[str, Engine] = {}
_CACHE_LOCK = threading.Lock()


def get_engine(params: LLMParams) -> Engine:
    """The engine for these params in this Python process, built on first use."""
    key = params.model_dump_json()
    with _CACHE_LOCK:
        engine = _CACHE.get(key)
        if engine is None:
            log.info("creating LLM engine %s", describe(params))
            engine = _build(params)
            _CACHE[key] = engine
        return engine


def clear_engine_cache() -> None:
    """Forget cached engines (tests; a notebook switching models)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def _build(params: LLMParams) -> Engine:
    engine = _build_bare(params)
    if params.journal_dir:
        from webscale_rl.udfs.llm.journal import ResponseJournal, journaled, spark_partition_scope

        # Request ids do not name the model, so answers of different models live apart.
        journal = ResponseJournal(params.journal_dir).scoped(f"{params.engine}-{engine.model}")
        engine = journaled(engine, journal, scope=spark_partition_scope)
    return engine


def _build_bare(params: LLMParams) -> Engine:
    # Imports are lazy: a CPU-only cluster must not need vllm, and "none" needs nothing.
    if params.engine == "none":
        from webscale_rl.udfs.llm.engine_rules import RuleEngine

        return RuleEngine(params)
    if params.engine == "openai":
        from webscale_rl.udfs.llm.engine_openai import OpenAIEngine

        return OpenAIEngine(params)
    if params.engine == "vllm":
        from webscale_rl.udfs.llm.engine_vllm import VLLMEngine

        return VLLMEngine(params)
    if params.engine == "simulated":
        return _build_simulated(params)
    raise ConfigError(f"unknown llm.engine {params.engine!r}; expected one of {ENGINES}")


def _build_simulated(params: LLMParams) -> Engine:
    from webscale_rl.udfs.llm.engine_simulated import SimulatedEngine

    if params.simulated_responder:
        responder = load_callable(params.simulated_responder)
    else:
        from webscale_rl.udfs.llm.engine_rules import RuleEngine

        rules = RuleEngine(params)

        def responder(request):
            return rules.generate([request])[0].text

    return SimulatedEngine(
        responder,
        prompt_tokens_per_s=params.simulated_prompt_tokens_per_s,
        gen_tokens_per_s=params.simulated_gen_tokens_per_s,
        counts_path=params.simulated_counts_path,
        model=params.model or "simulated",
    )


def load_callable(spec: str):
    """Import 'package.module:attr'."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"expected 'module:function', got {spec!r}")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"cannot load {spec!r}: {e}") from None
