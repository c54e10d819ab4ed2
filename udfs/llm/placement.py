"""Where and with which engine an LLM stage runs: per-stage engine settings over `llm`, and the
Spark resource profile (GPUs per task) for vLLM.

`llm_stages.<stage>.llm.*` overrides `llm.*` for one stage, so generation can use a big model
and filtering a small one, or the rule engine generate while a real model checks. Each output
row records the model of the engine that answered it, so provenance stays true per stage.
"""

from __future__ import annotations

import glob
import logging
import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from webscale_rl import stages
from webscale_rl.errors import ConfigError
from webscale_rl.udfs.llm.engine import LLMParams

log = logging.getLogger(__name__)

LLM_STAGES = stages.LLM_STAGES  # the stages declared `llm` (webscale_rl/stages.py)


class StageEngine(BaseModel):
    """One stage's own engine settings, over the shared `llm` ones."""

    model_config = ConfigDict(extra="forbid")

    llm: dict[str, Any] = Field(
        default_factory=dict,
        description="Keys of `llm` this stage overrides, e.g. {engine: openai, model: NAME, "
        "base_url: ...}: a big model for generate, a small one for annotate, rules for one of "
        "them. Unset keys come from `llm`.",
    )

    @field_validator("llm")
    @classmethod
    def _known_keys(cls, value: dict) -> dict:
        unknown = sorted(set(value) - set(LLMParams.model_fields))
        if unknown:
            raise ValueError(f"unknown llm key(s) {unknown}; the keys are those of `llm`")
        return value


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        both_dicts = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merge(out[key], value) if both_dicts else value
    return out


def stage_llm(llm: LLMParams, params, stage: str) -> LLMParams:
    """`llm` with `params.<stage>.llm` (LLMStageParams) laid over it; a ValueError names the stage."""
    over = getattr(params, stage).llm if stage in LLM_STAGES else {}
    if not over:
        return llm
    try:
        return LLMParams.model_validate(_merge(llm.model_dump(), over))
    except ValidationError as err:
        problems = "; ".join(
            ".".join(map(str, e["loc"])) + ": " * bool(e["loc"])
            + e["msg"].removeprefix("Value error, ")
            for e in err.errors()
        )  # fmt: skip
        raise ValueError(f"llm_stages.{stage}.llm: {problems}") from None


def gpu_profile(llm: LLMParams, master: str | None = None, executor_gpus: str | None = None):
    """A Spark stage-level resource profile asking GPUs per task for vllm; None otherwise.

    Only task resources are requested (a TaskResourceProfile): the executors must already have
    GPUs (`spark.executor.resource.gpu.amount`), and CPU stages of the same application keep
    running on them without a GPU each. Spark's local mode refuses resource profiles, so there
    is none: the one process uses the machine's GPUs (or vLLM's CPU build). `master=None` means
    a cluster whose executor resources are not known here.
    """
    if llm.engine != "vllm":
        return None
    gpus = llm.gpus_per_task or llm.tensor_parallel_size
    if master is not None and master.startswith("local"):
        if llm.gpus_per_task and local_gpu_count() == 0:
            raise ConfigError(
                f"llm.gpus_per_task={llm.gpus_per_task} but this machine shows no GPU "
                "(no /dev/nvidia* or /dev/kfd, or CUDA_VISIBLE_DEVICES hides them); set "
                "llm.gpus_per_task=0 to run vLLM's CPU build, or run on a GPU machine"
            )
        return None
    if executor_gpus is not None and float(executor_gpus) < gpus:
        # Executors with fewer GPUs could never run the tasks: the job would wait forever.
        raise ConfigError(
            f"llm.engine=vllm asks {gpus:g} GPU(s) per task but the executors offer "
            f"{executor_gpus} (spark.executor.resource.gpu.amount); start the cluster with "
            "more GPUs per executor, or lower llm.gpus_per_task / llm.tensor_parallel_size"
        )
    if master is not None and executor_gpus is None:
        # Some platforms (Databricks GPU compute) set executor GPUs outside the Spark conf.
        log.warning(
            "llm.engine=vllm asks %g GPU(s) per task; spark.executor.resource.gpu.amount is "
            "not set, so the GPU tasks wait until the cluster offers GPUs",
            gpus,
        )
    from pyspark.resource import ResourceProfileBuilder, TaskResourceRequests

    requests = TaskResourceRequests().cpus(1).resource("gpu", float(gpus))
    return ResourceProfileBuilder().require(requests).build


def local_gpu_count() -> int:
    """GPUs this machine exposes (NVIDIA or ROCm device files), as far as CUDA may see them."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return 0
    return len(glob.glob("/dev/nvidia[0-9]*")) or int(os.path.exists("/dev/kfd"))


def share_server_slots(llm: LLMParams, n_tasks: int) -> tuple[LLMParams, str | None]:
    """For an OpenAI-compatible server that reports its parallel slots (llama.cpp), split them
    among the stage's tasks, so the tasks together never queue requests inside the server,
    where they would time out and be sent again. (llm, note for the stage result)."""
    if llm.engine != "openai":
        return llm, None
    from webscale_rl.udfs.llm.engine import resolve_api_key
    from webscale_rl.udfs.llm.http_concurrency import server_slots

    key = resolve_api_key(llm)
    slots = server_slots(llm.base_url, {"Authorization": f"Bearer {key}"} if key else {})
    if not slots:
        return llm, None
    per_task = min(llm.max_concurrency, max(1, slots // n_tasks))
    note = f"server slots={slots}: at most {per_task} request(s) in flight per task"
    if n_tasks > slots:
        note += f" ({n_tasks} tasks > {slots} slots: llm_stages.tasks={slots} would queue none)"
        log.warning(note)
    return llm.model_copy(update={"max_concurrency": per_task}), note
