"""Conservation audit: every input row of every stage is kept or rejected, nothing lost.

Two checks per stage:
- over the run's MLflow metrics: rows_in = rows_out + rows_rejected + rows_skipped;
- over the Delta tables (run-independent): every input unit's key is in the stage's output
  table or in `rejects` under that stage. A stage module says what its input units are with
  `KEY` and optionally `input_units(spark, cfg)` (default: the input table's `KEY` column).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from webscale_rl import tables
from webscale_rl.config import Config


@dataclass
class StageAudit:
    stage: str
    metric_in: int | None = None
    metric_out: int | None = None
    metric_rejected: int | None = None
    metric_skipped: int | None = None
    units: int | None = None
    in_output: int | None = None
    in_rejects: int | None = None
    missing: int | None = None

    @property
    def metric_gap(self) -> int:
        if self.metric_in is None:
            return 0
        return (
            self.metric_in
            - (self.metric_out or 0)
            - (self.metric_rejected or 0)
            - (self.metric_skipped or 0)
        )

    @property
    def ok(self) -> bool:
        return self.metric_gap == 0 and not self.missing


def stage_config(spark, cfg: Config, stage: str) -> Config:
    """The config under which the stage read its input: `allow_skip` applied, and when its
    input table is missing because stages before it were skipped (by a run with
    `--allow-skip`), the nearest earlier table that exists."""
    from webscale_rl.jobs import pipeline

    cfg = pipeline.stage_config(cfg, stage)
    own = pipeline.load_stage(stage).INPUT
    logical = own
    while logical is not None and not tables.exists(spark, tables.table_ref(cfg, logical)):
        before = pipeline.producer(logical)
        if before not in pipeline.SKIPPABLE:
            return cfg
        logical = pipeline.load_stage(before).INPUT
    if logical is None or logical == own:
        return cfg
    names = {own: tables.table_name(cfg, logical)}
    return cfg.model_copy(update={"tables": cfg.tables.model_copy(update=names)})


def input_units(spark, cfg: Config, module):
    """The stage's input keys as a one-column DataFrame named `key`, or None (e.g. ingest)."""
    if getattr(module, "INPUT", None) is None:
        return None
    if hasattr(module, "input_units"):
        return module.input_units(spark, cfg)
    ref = tables.table_ref(cfg, module.INPUT)
    if not tables.exists(spark, ref):
        return None
    return tables.read(spark, ref).select(module.KEY)


def audit_tables(spark, cfg: Config, stage: str) -> StageAudit:
    from pyspark.sql import functions as F

    from webscale_rl.jobs.pipeline import STAGES

    module = importlib.import_module(f"webscale_rl.jobs.{STAGES[stage]}")
    res = StageAudit(stage)
    units = input_units(spark, stage_config(spark, cfg, stage), module)
    out_ref = tables.table_ref(cfg, module.OUTPUT)
    if units is None or not tables.exists(spark, out_ref):
        return res
    key = module.KEY
    units = units.select(F.col(key).alias("k")).distinct()
    out_keys = tables.read(spark, out_ref).select(F.col(key).alias("k")).distinct()
    rej_ref = tables.table_ref(cfg, "rejects")
    rej_keys = (
        tables.read(spark, rej_ref)
        .where(F.col("stage") == stage)
        .select(F.col("row_id").alias("k"))
        .distinct()
        if tables.exists(spark, rej_ref)
        else spark.createDataFrame([], "k string")
    )
    flagged = (
        units.join(out_keys.withColumn("o", F.lit(1)), "k", "left")
        .join(rej_keys.withColumn("r", F.lit(1)), "k", "left")
        .agg(
            F.count("*").alias("units"),
            F.count("o").alias("in_output"),
            F.count("r").alias("in_rejects"),
            F.sum(F.when(F.col("o").isNull() & F.col("r").isNull(), 1).otherwise(0)).alias(
                "missing"
            ),
        )
        .first()
    )
    res.units, res.in_output, res.in_rejects = (
        flagged["units"],
        flagged["in_output"],
        flagged["in_rejects"],
    )
    res.missing = int(flagged["missing"] or 0)
    return res


def latest_run_id(cfg: Config) -> str | None:
    from webscale_rl import tracking

    mlflow = tracking.setup(cfg)
    exp = mlflow.get_experiment_by_name(cfg.mlflow.experiment)
    if exp is None:
        return None
    runs = mlflow.MlflowClient().search_runs(
        [exp.experiment_id],
        filter_string="tags.webscale_rl.lakehouse != ''",
        order_by=["attributes.start_time DESC"],
        max_results=20,
    )
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    return parents[0].info.run_id if parents else None


def stage_metrics(cfg: Config, run_id: str) -> dict[str, dict[str, float]]:
    """Stage name -> metrics of that stage's nested run."""
    from webscale_rl import tracking

    mlflow = tracking.setup(cfg)
    client = mlflow.MlflowClient()
    parent = client.get_run(run_id)
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'"
    )
    return {r.data.tags.get("webscale_rl.stage", r.info.run_name): r.data.metrics for r in children}


def audit(spark, cfg: Config, run_id: str | None) -> list[StageAudit]:
    from webscale_rl.jobs.pipeline import STAGES

    metrics = stage_metrics(cfg, run_id) if run_id else {}
    results = []
    for stage in STAGES:
        res = audit_tables(spark, cfg, stage)
        m = metrics.get(stage)
        if m:
            res.metric_in = int(m.get("rows_in", 0))
            res.metric_out = int(m.get("rows_out", 0))
            res.metric_rejected = int(m.get("rows_rejected", 0))
            res.metric_skipped = int(m.get("rows_skipped", 0))
        if m or res.units is not None:
            results.append(res)
    return results


def format_table(rows: list[StageAudit]) -> str:
    head = f"{'stage':<14}{'run in':>8}{'out':>8}{'rej':>8}{'skip':>8}{'gap':>6} | {'units':>8}{'in out':>8}{'in rej':>8}{'missing':>9}  ok"
    lines = [head, "-" * len(head)]

    def fmt(v):
        return "-" if v is None else str(v)

    for r in rows:
        lines.append(
            f"{r.stage:<14}{fmt(r.metric_in):>8}{fmt(r.metric_out):>8}{fmt(r.metric_rejected):>8}"
            f"{fmt(r.metric_skipped):>8}{r.metric_gap:>6} | {fmt(r.units):>8}{fmt(r.in_output):>8}"
            f"{fmt(r.in_rejects):>8}{fmt(r.missing):>9}  {'yes' if r.ok else 'NO'}"
        )
    return "\n".join(lines)
