"""What every job shares: its command-line arguments, the session, tracking and the result.

Each stage module defines `NAME`, `INPUT` and `OUTPUT` (logical table names; `INPUT` is None for
ingest, which reads files), `KEY` (the id column of its input units and output rows; a stage whose
input units are not rows of `INPUT`, such as generate's (document, persona) pairs, also defines
`input_units(spark, cfg)`), and `run(spark, cfg) -> StageResult`, and ends with

    if __name__ == "__main__":
        main()

where `main = base.stage_main_for(NAME)`, so `spark-submit jobs/<stage>.py --config ...` works.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from dataclasses import dataclass, field

from webscale_rl.config import Config, load_config
from webscale_rl.errors import WebscaleError


@dataclass
class StageResult:
    stage: str
    rows_in: int = 0
    rows_out: int = 0
    rejects: dict[str, int] = field(default_factory=dict)
    skipped: int = 0  # rows finished by an earlier run and not redone
    inputs: dict[str, int | None] = field(default_factory=dict)  # table ref -> Delta version
    outputs: dict[str, int | None] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return sum(self.rejects.values())

    @classmethod
    def from_counts(cls, stage: str, counts, spark, inputs: dict, output_ref: str, **extra):
        """A result for a stage that committed once with `tables.commit_results`."""
        from webscale_rl import tables

        return cls(
            stage=stage,
            rows_in=counts.rows_in,
            rows_out=counts.rows_out,
            rejects=counts.rejects,
            skipped=counts.skipped,
            inputs=inputs,
            outputs={output_ref: tables.version(spark, output_ref)},
            **extra,
        )

    def summary(self) -> str:
        top = ", ".join(
            f"{r}={n}" for r, n in sorted(self.rejects.items(), key=lambda x: -x[1])[:6]
        )
        line = (
            f"[{self.stage}] in={self.rows_in} kept={self.rows_out} rejected={self.rejected}"
            f" skipped(done before)={self.skipped} in {self.seconds:.1f}s"
        )
        return line + (f"  rejects: {top}" if top else "")


def add_global_options(p: argparse.ArgumentParser, after_command: bool = False) -> None:
    """--config, --lakehouse, --set. On a subcommand (`after_command`) they may also follow it,
    as spark-submit and job schedulers pass them: `jobs/ingest.py --lakehouse X --input Y`."""
    unset = {"default": argparse.SUPPRESS} if after_command else {}
    p.add_argument(
        "--config",
        metavar="FILE",
        help="YAML config file (see `webscale-rl config show`).",
        **unset,
    )
    p.add_argument(
        "--lakehouse", metavar="PATH", help="Folder or URI holding the Delta tables.", **unset
    )
    p.add_argument(
        "--set",
        dest="overrides_after" if after_command else "overrides",
        action="append",
        default=argparse.SUPPRESS if after_command else [],
        metavar="KEY=VALUE",
        help="Override one config value, e.g. --set llm.engine=openai (repeatable).",
    )


def add_stage_io_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--input",
        metavar="PATH_OR_TABLE",
        help="ingest: input path/glob (comma-separated for several); other stages: input table name.",
    )
    p.add_argument("--format", choices=["auto", "warc", "wet", "jsonl", "parquet", "delta"])
    p.add_argument("--output", metavar="TABLE", help="Output table name for this stage.")


def config_from_args(args, stage_module=None) -> Config:
    overrides = list(args.overrides or []) + list(getattr(args, "overrides_after", []))
    if getattr(args, "input", None):
        if stage_module is None or stage_module.INPUT is None:
            paths = [s for s in args.input.split(",") if s.strip()]
            overrides.append(
                f"ingest.input={paths!r}" if len(paths) > 1 else f"ingest.input={paths[0]}"
            )
        else:
            overrides.append(f"tables.{stage_module.INPUT}={args.input}")
    if getattr(args, "format", None):
        overrides.append(f"ingest.format={args.format}")
    if getattr(args, "output", None) and stage_module is not None:
        overrides.append(f"tables.{stage_module.OUTPUT}={args.output}")
    return load_config(args.config, overrides, lakehouse=args.lakehouse)


def load_stage(name: str):
    """Import a stage module by name, with a clear error listing the stages that exist."""
    from webscale_rl.jobs.pipeline import STAGES

    if name not in STAGES:
        raise WebscaleError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    return importlib.import_module(f"webscale_rl.jobs.{STAGES[name]}")


def run_stage(spark, cfg: Config, module) -> StageResult:
    """Run one stage inside its nested MLflow run and log its result."""
    from webscale_rl import tracking

    with tracking.stage_run(cfg, module.NAME):
        start = time.time()
        result = module.run(spark, cfg)
        result.seconds = time.time() - start
        if cfg.mlflow.enabled:
            tracking.log_stage_result(result)
    print(result.summary(), flush=True)
    for note in result.notes:
        print(f"    {note}", flush=True)
    return result


def stage_main_for(name: str):
    def main(argv: list[str] | None = None) -> int:
        from webscale_rl.cli import main as cli_main

        return cli_main(["stage", name, *(sys.argv[1:] if argv is None else argv)])

    return main


def result_schema(schema):
    """The output schema plus the status columns every stage's UDF returns."""
    from pyspark.sql.types import StringType, StructField, StructType

    return StructType(
        list(schema.fields)
        + [
            StructField(c, StringType(), True)
            for c in ("_reject_reason", "_reject_detail", "_row_id")
        ]
    )


def row_stage(
    spark,
    cfg: Config,
    name: str,
    input_logical: str,
    output_logical: str,
    schema,
    key: str,
    transform,
    chunks: int = 1,
    input_df=None,
    metrics=None,
    input_schema=None,
    partitions: int | None = None,
    profile=None,
) -> StageResult:
    """Run a per-row stage: skip rows already done, transform the rest, commit each chunk.

    `transform(pandas.DataFrame) -> pandas.DataFrame` runs on executors and returns the output
    schema's columns plus `_row_id`, `_reject_reason`, `_reject_detail`. With `chunks > 1` the
    pending rows are split by a hash of `key` and committed chunk by chunk, so a crash loses at
    most one chunk of work (LLM stages journal even that). `partitions` hash-partitions the
    pending rows on `key`, so a row lands in the same task on every rerun; `profile` is a Spark
    resource profile (GPUs per task) for the UDF's stage.
    """
    from pyspark.sql import functions as F

    from webscale_rl import tables

    in_ref = tables.table_ref(cfg, input_logical)
    out_ref = tables.table_ref(cfg, output_logical)
    if input_df is None:
        if not tables.exists(spark, in_ref):
            raise WebscaleError(
                f"stage {name}: input table {in_ref} does not exist; run the stage before it"
            )
        input_df = tables.read(spark, in_ref)
    if input_schema is not None:  # a clear error naming the column, before any work
        tables.check_columns(input_df, input_schema, f"stage {name} input {in_ref}")
    in_version = tables.version(spark, in_ref)
    total = input_df.count()
    todo = tables.pending(spark, cfg, name, input_df, out_ref, key)
    if partitions:
        todo = todo.repartition(partitions, key)
    out_schema = result_schema(schema)
    udf_options = {"profile": profile} if profile is not None else {}

    def apply(batches):
        for batch in batches:
            yield transform(batch)

    result = StageResult(stage=name, inputs={in_ref: in_version})
    for i in range(chunks):
        part = (
            todo if chunks == 1 else todo.where(F.pmod(F.xxhash64(F.col(key)), F.lit(chunks)) == i)
        )
        counts = tables.commit_results(
            spark,
            cfg,
            name,
            part.mapInPandas(apply, out_schema, **udf_options),
            out_ref,
            schema,
            key=key,
        )
        result.rows_in += counts.rows_in
        result.rows_out += counts.rows_out
        result.skipped += counts.skipped
        for reason, n in counts.rejects.items():
            result.rejects[reason] = result.rejects.get(reason, 0) + n
    result.skipped += total - result.rows_in  # finished by an earlier run
    result.rows_in = total
    result.outputs = {out_ref: tables.version(spark, out_ref)}
    if metrics:
        result.metrics.update(metrics(result))
    return result
