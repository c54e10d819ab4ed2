"""What every job shares: its command-line arguments, the session, tracking and the result.

Each stage is declared once in webscale_rl/stages.py (name, input and output tables, key, whether
it runs an LLM, whether it can be skipped). Its module takes `NAME`, `INPUT` and `OUTPUT`
(logical table names; `INPUT` is None for ingest, which reads files) and `KEY` (the id column of
its input units and output rows) from that declaration (`DECL = declared(name)`); a stage whose
input units are not rows of `INPUT`, such as generate's (document, persona) pairs, also defines
`input_units(spark, cfg)`. It defines `run(spark, cfg) -> StageResult`, and ends with

    if __name__ == "__main__":
        main()

where `main = base.stage_main_for(NAME)`, so `spark-submit jobs/<stage>.py --config ...` works.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from contextlib import contextmanager

from webscale_rl.config import Config, load_config
from webscale_rl.errors import WebscaleError
from webscale_rl.row_stage import StageResult


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

    with tracking.stage_run(cfg, module.NAME), spark_job_group(spark, module.NAME):
        start = time.time()
        result = module.run(spark, cfg)
        result.seconds = time.time() - start
        if cfg.mlflow.enabled:
            tracking.log_stage_result(result)
    print(result.summary(), flush=True)
    for note in result.notes:
        print(f"    {note}", flush=True)
    return result


@contextmanager
def spark_job_group(spark, stage: str):
    """Label a stage's Spark jobs `webscale-rl:<stage>`, so the Spark UI, its REST API and the
    event log group a run's jobs by stage."""
    try:
        sc = spark.sparkContext
    except Exception:  # noqa: BLE001 - Spark Connect sessions have no SparkContext
        yield
        return
    sc.setJobGroup(f"webscale-rl:{stage}", f"webscale-rl stage {stage}")
    try:
        yield
    finally:
        # A null value removes the property, so jobs after the stage carry no stale label.
        sc.setLocalProperty("spark.jobGroup.id", None)
        sc.setLocalProperty("spark.job.description", None)


def stage_main_for(name: str):
    def main(argv: list[str] | None = None) -> int:
        from webscale_rl.cli import main as cli_main

        return cli_main(["stage", name, *(sys.argv[1:] if argv is None else argv)])

    return main
