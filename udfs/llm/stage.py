"""What the three LLM stages (annotate, generate, verify) share: rows -> requests -> engine ->
parsed fields or a reject reason -> output rows with provenance and status columns.

A stage is a `StageSpec`: a list of steps applied in order to the rows of one pandas batch. A
row rejected by a step skips the later ones. An LLM step builds one request per live row and
sends them in engine calls of `llm.batch_size` rows; each call is journaled as it completes
(when `llm.journal_dir` is set), so a crash or a task retry never pays twice for a finished
request. A check step is a pure function of the row (verify's grounding checks).

Every output row records the model, the prompt version(s), the sampling values actually sent
(JSON, by task) and the prompt/completion tokens of the stage's calls; `annotate` makes two
calls per document and sums them. Totals, including the tokens of rejected rows, go through a
Spark accumulator into `StageResult.metrics` (and so into MLflow).

`run_llm_stage` is the driver side: it wires a spec into `webscale_rl.row_stage` with resumable
chunked commits, a stable task layout and, for vLLM, a GPU resource profile.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model
from pyspark.accumulators import AccumulatorParam

from webscale_rl.errors import ConfigError
from webscale_rl.reject_reasons import engine_failure_reason
from webscale_rl.udfs.llm.engine import LLMParams, get_engine, sampling_for
from webscale_rl.udfs.llm.interface import TASKS, LLMRequest, LLMResponse
from webscale_rl.udfs.llm.placement import (
    LLM_STAGES,
    StageEngine,
    gpu_profile,
    share_server_slots,
    stage_llm,
)
from webscale_rl.udfs.llm.prompts import prompt_version
from webscale_rl.udfs.llm.tasks import TaskParams, build_request, parse_response

STATUS_COLUMNS = ("_reject_reason", "_reject_detail", "_row_id")
BAD_INPUT = "bad_input"


class _StageLayout(BaseModel):
    """How the LLM stages are laid out on Spark; LLMStageParams adds each stage's engine."""

    model_config = ConfigDict(extra="forbid")
    commit_chunks: int = Field(
        4,
        ge=1,
        description="Pending rows are split by a hash of their document id into this many "
        "chunks, each committed to Delta as it completes: a crash loses at most the chunk in "
        "flight, and the response journal saves even that. More chunks = finer resume points, "
        "more commits; on a cluster use enough that one chunk is an hour or less of engine time.",
    )
    tasks: int | None = Field(
        None,
        ge=1,
        description="Spark tasks per chunk, i.e. engine instances at work at once (one per GPU "
        "for vllm). Rows are hash-partitioned on their document id into this many tasks (one "
        "document's rows together, in order, for the engine's prefix cache), so a rerun puts a "
        "row in the same task and the same journal folder: keep it fixed across reruns. "
        "Default: the cluster's default parallelism.",
    )


# One `<stage>: StageEngine` field per stage declared `llm` in webscale_rl/stages.py, so a new LLM
# stage gets its `llm_stages.<stage>.llm.*` settings without touching this file.
LLMStageParams = create_model(
    "LLMStageParams",
    __base__=_StageLayout,
    __doc__="How the LLM stages are laid out on Spark, and each stage's engine over `llm`.",
    **{
        name: (
            StageEngine,
            Field(
                default_factory=StageEngine, description=f"The {name} stage's engine over `llm`."
            ),
        )
        for name in LLM_STAGES
    },
)


def stage_params(cfg) -> LLMStageParams:
    return cfg.llm_stages


# --- what a stage is -------------------------------------------------------------------------

Check = Callable[[dict, TaskParams], tuple[bool, str, str]]


@dataclass(frozen=True)
class Step:
    """One LLM task (`task`) or one pure check (`check(row, task_params) -> (ok, reason, detail)`)."""

    task: str | None = None
    check: Check | None = None

    def __post_init__(self):
        if (self.task is None) == (self.check is None):
            raise ValueError("a Step is either an LLM task or a check, not both or neither")
        if self.task is not None and self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; expected one of {TASKS}")


@dataclass(frozen=True)
class StageSpec:
    name: str  # stage name, as in rejects.stage
    key: str  # id column of input units and output rows
    columns: tuple[str, ...]  # the output schema's columns, in order
    steps: tuple[Step, ...]
    token_prefix: str = ""  # provenance columns are <prefix>model, <prefix>prompt_tokens, ...

    def provenance_columns(self) -> tuple[str, ...]:
        names = ("model", "prompt_version", "sampling", "prompt_tokens", "completion_tokens")
        return tuple(self.token_prefix + n for n in names)


@dataclass(frozen=True)
class BatchContext:
    """Everything a pandas batch needs; pickled into the UDF closure."""

    spec: StageSpec
    llm: LLMParams
    tasks: TaskParams
    run_id: str
    meter: Any = None  # a Spark accumulator of {name: number} sums, or None


# --- one row's way through the steps ---------------------------------------------------------


@dataclass
class RowState:
    row: dict
    reason: str | None = None
    detail: str | None = None
    model: str | None = None
    versions: list[str] = field(default_factory=list)
    sampling: dict[str, dict] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def alive(self) -> bool:
        return self.reason is None

    def reject(self, reason: str, detail: str | None) -> None:
        self.reason, self.detail = reason, (detail or "")[:500]


def _new_meter() -> dict[str, float]:
    return {
        "llm_requests": 0,
        "llm_requests_from_journal": 0,
        "llm_prompt_tokens": 0,
        "llm_completion_tokens": 0,
        "llm_engine_seconds": 0.0,
    }


def call_engine(
    engine, requests: Sequence[LLMRequest], batch_size: int, meter: dict
) -> list[LLMResponse]:
    """Send requests in calls of `batch_size`, so each call is journaled as it completes."""
    out: list[LLMResponse] = []
    for start in range(0, len(requests), batch_size):
        chunk = requests[start : start + batch_size]
        from_journal = getattr(engine, "served_from_journal", 0)
        began = time.perf_counter()
        responses = engine.generate(chunk)
        meter["llm_engine_seconds"] += time.perf_counter() - began
        meter["llm_requests_from_journal"] += (
            getattr(engine, "served_from_journal", 0) - from_journal
        )
        if len(responses) != len(chunk):
            raise RuntimeError(
                f"engine {engine.name} returned {len(responses)} responses for {len(chunk)} requests"
            )
        out.extend(responses)
    meter["llm_requests"] += len(requests)
    return out


def _llm_step(task: str, states: list[RowState], ctx: BatchContext, meter: dict) -> None:
    built: list[tuple[RowState, LLMRequest]] = []
    for state in states:
        try:
            request = build_request(task, state.row, ctx.tasks, ctx.llm)
        except (ValueError, TypeError) as err:  # a row without text, persona, ...
            state.reject(BAD_INPUT, f"{task}: {err}")
            continue
        built.append((state, request))
    if not built:
        return
    engine = get_engine(ctx.llm)
    requests = [r for _, r in built]
    responses = call_engine(engine, requests, ctx.llm.batch_size, meter)
    meter[f"llm_requests.{task}"] = meter.get(f"llm_requests.{task}", 0) + len(requests)
    for (state, request), response in zip(built, responses, strict=True):
        meter["llm_prompt_tokens"] += response.prompt_tokens
        meter["llm_completion_tokens"] += response.completion_tokens
        state.model = engine.model
        state.versions.append(prompt_version(task))
        state.sampling[task] = sampling_for(request, ctx.llm)
        state.prompt_tokens += response.prompt_tokens
        state.completion_tokens += response.completion_tokens
        result = parse_response(task, response, state.row, ctx.tasks)
        if result.ok:
            state.row.update(result.fields)
        elif response.error:
            # Final (prompt_too_long, no_candidate, ...) or retryable (the endpoint was down):
            # a rerun sends the retryable ones again (webscale_rl/reject_reasons.py).
            state.reject(engine_failure_reason(response.error), result.reject_detail)
        else:
            state.reject(result.reject_reason, result.reject_detail)


def _check_step(check: Check, states: list[RowState], ctx: BatchContext) -> None:
    for state in states:
        ok, reason, detail = check(state.row, ctx.tasks)
        if not ok:
            state.reject(reason, detail)


def run_steps(rows: list[dict], ctx: BatchContext, meter: dict) -> list[RowState]:
    states = [RowState(dict(row)) for row in rows]
    for step in ctx.spec.steps:
        alive = [s for s in states if s.alive]
        if not alive:
            break
        if step.task is not None:
            _llm_step(step.task, alive, ctx, meter)
        else:
            _check_step(step.check, alive, ctx)
    return states


def _clean(value):
    # pandas hands missing numbers over as NaN; the tasks expect None.
    return None if isinstance(value, float) and value != value else value


def to_frame(states: list[RowState], ctx: BatchContext):
    """Output rows: the schema's columns (from the row, provenance, run) + status columns."""
    from webscale_rl.udfs.frames import rows_frame

    spec = ctx.spec
    now = datetime.now(UTC).replace(tzinfo=None)
    model, version, sampling, prompt, completion = spec.provenance_columns()
    records = []
    for s in states:
        rec = {c: s.row.get(c) for c in spec.columns}
        if s.model is not None:
            rec[model] = s.model
            rec[version] = ",".join(s.versions)
            rec[sampling] = json.dumps(s.sampling, sort_keys=True)
            rec[prompt] = s.prompt_tokens
            rec[completion] = s.completion_tokens
        rec.update(run_id=ctx.run_id, created_at=now)
        rec.update(_reject_reason=s.reason, _reject_detail=s.detail, _row_id=s.row[spec.key])
        records.append(rec)
    return rows_frame(records, [*spec.columns, *STATUS_COLUMNS])


def transform_batch(pdf, ctx: BatchContext):
    """pandas batch of input rows -> output rows with `_reject_reason/_reject_detail/_row_id`."""
    began = time.perf_counter()
    rows = [{k: _clean(v) for k, v in r.items()} for r in pdf.to_dict("records")]
    meter = _new_meter()
    states = run_steps(rows, ctx, meter)
    frame = to_frame(states, ctx)
    # engine seconds / UDF seconds = the share of the task's Python time the engine is busy
    meter["llm_udf_seconds"] = time.perf_counter() - began
    if ctx.meter is not None:
        ctx.meter.add(meter)
    return frame


# --- driver side -------------------------------------------------------------------------------


def default_journal_dir(cfg) -> str | None:
    """`<lakehouse>/_llm_journal` as a local/FUSE path, or None when the lakehouse has none."""
    from webscale_rl.tables import lakehouse_root

    root = lakehouse_root(cfg)
    if root.startswith("dbfs:/"):
        return "/dbfs/" + root[len("dbfs:/") :].lstrip("/") + "/_llm_journal"
    if root.startswith("file:"):
        return "/" + root[len("file:") :].lstrip("/") + "/_llm_journal"
    if "://" in root or root.split("/", 1)[0].endswith(":"):
        return None  # object store: the journal needs a file system; set llm.journal_dir
    return root + "/_llm_journal"


def engine_params(cfg, stage: str | None = None, params: LLMStageParams | None = None):
    """The stage's engine (`cfg.llm` under `llm_stages.<stage>.llm`, from `params` when given)
    with the journal defaulted under the lakehouse (not for the free rule engine)."""
    llm = cfg.llm
    if stage is not None:
        llm = stage_llm(llm, params or stage_params(cfg), stage)
    if llm.journal_dir or llm.engine == "none":
        return llm
    journal = default_journal_dir(cfg)
    return llm.model_copy(update={"journal_dir": journal}) if journal else llm


class SumDict(AccumulatorParam):
    """Adds dicts of numbers key by key (the stage meter)."""

    def zero(self, value):
        return {}

    def addInPlace(self, a, b):  # noqa: N802 - Spark's name
        for k, v in b.items():
            a[k] = a.get(k, 0) + v
        return a


def stage_metrics(meter: dict, rows_out: int, seconds: float) -> dict[str, float]:
    """Totals plus tokens per accepted row and throughput."""
    metrics = {k: float(v) for k, v in meter.items()}
    prompt = meter.get("llm_prompt_tokens", 0)
    tokens = prompt + meter.get("llm_completion_tokens", 0)
    metrics["llm_requests_sent"] = meter.get("llm_requests", 0) - meter.get(
        "llm_requests_from_journal", 0
    )
    if rows_out:
        metrics["llm_tokens_per_accepted_row"] = tokens / rows_out
        metrics["llm_prompt_tokens_per_accepted_row"] = prompt / rows_out
    if seconds > 0:
        metrics["accepted_rows_per_s"] = rows_out / seconds
        metrics["llm_tokens_per_s"] = tokens / seconds
    metrics["llm_stage_seconds"] = seconds
    return metrics


def group_column(input_df) -> str | None:
    """Rows are grouped by document: the prompts put the document first, so its personas sent
    to one engine back to back share the prompt prefix (vLLM's prefix cache), and one
    document's requests share a task and journal folder. Keyed by row when there is none."""
    return "doc_id" if "doc_id" in input_df.columns else None


def run_llm_stage(
    spark,
    cfg,
    spec: StageSpec,
    schema,
    input_logical: str,
    output_logical: str,
    input_df=None,
    params: LLMStageParams | None = None,
    derive=None,
):
    """Run a spec as a resumable row stage; returns the StageResult with LLM metrics. Without
    `input_df` the rows are `derive(<input table>)`, read incrementally by row_stage."""
    from webscale_rl import tables
    from webscale_rl.row_stage import row_stage

    params = params or stage_params(cfg)
    try:
        llm = engine_params(cfg, spec.name, params)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    n_tasks = params.tasks or spark.sparkContext.defaultParallelism
    llm, slots_note = share_server_slots(llm, n_tasks)
    sc = spark.sparkContext
    profile = gpu_profile(llm, sc.master, sc.getConf().get("spark.executor.resource.gpu.amount"))
    if input_df is None:  # a plan only, for its columns
        shape = tables.read(spark, tables.table_ref(cfg, input_logical))
        group_by = group_column(derive(shape) if derive else shape)
    else:
        group_by = group_column(input_df)
    meter = spark.sparkContext.accumulator({}, SumDict())
    ctx = BatchContext(spec, llm, cfg.tasks, cfg.run_id, meter)
    began = time.time()
    result = row_stage(
        spark,
        cfg,
        spec.name,
        input_logical,
        output_logical,
        schema,
        key=spec.key,
        transform=lambda pdf: transform_batch(pdf, ctx),
        chunks=params.commit_chunks,
        input_df=input_df,
        derive=derive,
        # Hash layout: a row lands in the same task (journal folder) on every rerun.
        partitions=n_tasks,
        profile=profile,
        group_by=group_by,
    )
    result.metrics.update(stage_metrics(meter.value, result.rows_out, time.time() - began))
    result.notes.append(
        f"engine={llm.engine} model={llm.model or '-'} tasks={n_tasks} "
        f"chunks={params.commit_chunks} journal={llm.journal_dir or 'off'}"
    )
    if slots_note:
        result.notes.append(slots_note)
    return result
