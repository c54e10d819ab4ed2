"""`webscale-rl`: run the pipeline or one stage, show the config, query the lakehouse with SQL.

Exit codes: 0 success, 1 failure (a clear message, no stack trace), 2 usage error.
"""

from __future__ import annotations

import argparse
import logging
import sys

from webscale_rl.errors import WebscaleError

EPILOG = """examples:
  webscale-rl run --input 'data/*.warc.gz'         # every stage
  webscale-rl run --input 'fineweb/*.parquet' --allow-skip filter   # an already-filtered corpus
  webscale-rl stage generate --retry-rejects malformed_json
  webscale-rl --lakehouse /tmp/lh stage ingest --input x.warc.gz --format warc
  webscale-rl --set llm.engine=openai --set llm.base_url=http://host:8000/v1 run
  webscale-rl sql "SELECT lang, count(*) FROM documents GROUP BY lang"
  webscale-rl config show
"""


def build_parser() -> argparse.ArgumentParser:
    from webscale_rl.jobs.base import add_global_options, add_stage_io_options
    from webscale_rl.stages import NAMES as STAGES

    p = argparse.ArgumentParser(
        prog="webscale-rl",
        description="Turn web pages into verifiable question-answer data for RL, as Spark jobs "
        "over Delta tables, tracked in MLflow.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_global_options(p)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run every stage in order",
        description="Run every stage in order in one MLflow run (a nested run per stage).",
        epilog="example: webscale-rl run --input '../shared/data/web/*.warc.gz'",
    )
    add_stage_io_options(run)
    add_skip_retry_options(run)
    add_global_options(run, after_command=True)
    run.add_argument("--stages", help=f"comma-separated subset of: {', '.join(STAGES)}")

    stage = sub.add_parser(
        "stage",
        help="run one stage",
        description="Run one stage: it reads its input table(s), writes its output table and rejects.",
        epilog="example: webscale-rl stage ingest --input x.warc.gz --format warc",
    )
    stage.add_argument("name", choices=list(STAGES), help="stage to run")
    add_stage_io_options(stage)
    add_skip_retry_options(stage)
    add_global_options(stage, after_command=True)

    cfg = sub.add_parser("config", help="show the resolved config", description="Config commands.")
    cfg_sub = cfg.add_subparsers(dest="config_command", metavar="ACTION")
    cfg_sub.add_parser(
        "show",
        help="print the resolved config as YAML",
        epilog="example: webscale-rl --set seed=3 config show",
    )

    sql = sub.add_parser(
        "sql",
        help="run Spark SQL over the lakehouse tables",
        description="Run one Spark SQL query; lakehouse tables are known by their names.",
        epilog='example: webscale-rl sql "SELECT domain, count(*) FROM qa VERSION AS OF 0 GROUP BY domain"',
    )
    sql.add_argument("query", help="the SQL query")
    sql.add_argument("--limit", type=int, default=100, help="rows to print (default 100)")
    for module in extra_commands():
        cmd = sub.add_parser(
            module.NAME,
            help=module.HELP,
            description=module.DESCRIPTION,
            epilog=f"example: {module.EXAMPLE}",
        )
        module.add_arguments(cmd)
    return p


def add_skip_retry_options(p: argparse.ArgumentParser) -> None:
    from webscale_rl.jobs.pipeline import SKIPPABLE

    p.add_argument(
        "--allow-skip",
        metavar="STAGE[,STAGE]",
        help=f"skip these stages ({', '.join(SKIPPABLE)}): they do not run and the next stage "
        "reads their input table; recorded in the dataset card, the qa commit and MLflow "
        "(config: allow_skip)",
    )
    p.add_argument(
        "--retry-rejects",
        metavar="REASON[,REASON]",
        help="also redo rows rejected for these final reasons (e.g. malformed_json); rows the "
        "engine failed on (engine_unavailable, engine_failed) are always redone "
        "(config: retry_rejects)",
    )


def _skip_retry_overrides(args) -> None:
    """--allow-skip / --retry-rejects as config overrides (they replace the config's lists)."""
    for option, key in (("allow_skip", "allow_skip"), ("retry_rejects", "retry_rejects")):
        value = getattr(args, option, None)
        if value is not None:
            items = [v.strip() for v in value.split(",") if v.strip()]
            args.overrides = [*args.overrides, f"{key}={items!r}"]


def _no_input() -> int:
    from webscale_rl.jobs.ingest import NO_INPUT

    print(f"error: {NO_INPUT}", file=sys.stderr)
    return 2


def extra_commands():
    import importlib

    from webscale_rl.commands import COMMANDS

    return [importlib.import_module(f"webscale_rl.commands.{name}") for name in COMMANDS]


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    try:
        return _dispatch(parser, args)
    except WebscaleError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except Exception as err:
        from webscale_rl.tables import is_conflict

        if not is_conflict(err):
            raise
        # Delta's optimistic concurrency refused our commit after its bounded retries.
        print(
            "error: another run changed the same Delta table at the same time and the retries "
            f"ran out ({str(err).splitlines()[0][:300]}). Run the same command again: finished "
            "work is kept and skipped.",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _dispatch(parser, args) -> int:
    from webscale_rl.jobs.base import config_from_args, load_stage

    if args.command == "config":
        if args.config_command != "show":
            parser.parse_args(["config", "--help"])
            return 2
        from webscale_rl.config import to_yaml

        print(to_yaml(config_from_args(args)), end="")
        return 0
    if args.command in ("stage", "run"):
        from webscale_rl.jobs.pipeline import plan

        _skip_retry_overrides(args)
        if args.command == "stage":
            stages = [args.name]
            cfg = config_from_args(args, load_stage(args.name))
        else:
            stages = [s.strip() for s in args.stages.split(",")] if args.stages else None
            cfg = config_from_args(args)
        # A usage error before Spark starts: nothing is ingested unless the user says what.
        if "ingest" in plan(cfg, stages) and not cfg.ingest.input:
            return _no_input()
        title = f"stage {args.name}" if args.command == "stage" else "pipeline"
        return _run(cfg, stages, title=title)
    if args.command == "sql":
        cfg = config_from_args(args)
        return _sql(cfg, args.query, args.limit)
    for module in extra_commands():
        if module.NAME == args.command:
            return module.run(args, config_from_args(args))
    parser.print_help()
    return 2


def _run(cfg, stages, title: str) -> int:
    from webscale_rl import tracking
    from webscale_rl.jobs import pipeline
    from webscale_rl.session import get_spark

    pipeline.plan(cfg, stages)  # unknown or contradictory stages: an error before Spark starts
    spark = get_spark(cfg)
    with tracking.pipeline_run(cfg, title) as run_id:
        cfg.run_id = run_id
        results = pipeline.run(spark, cfg, stages)
        if cfg.mlflow.enabled:
            from webscale_rl.reporting import log_run_artifacts

            log_run_artifacts(spark, cfg, results)
        from webscale_rl.summary import print_summary

        print_summary(spark, cfg, results)
    if cfg.mlflow.enabled:
        from webscale_rl.reporting import render_report

        print(f"report: {render_report(spark, cfg, run_id)}")
    return 0


def _sql(cfg, query: str, limit: int) -> int:
    from webscale_rl.session import get_spark
    from webscale_rl.tables import register_views

    spark = get_spark(cfg)
    register_views(spark, cfg)
    try:
        df = spark.sql(query)
    except Exception as err:  # Spark's analysis errors are the useful part; drop the JVM trace
        raise WebscaleError(f"SQL failed: {str(err).splitlines()[0][:500]}") from None
    df.show(limit, truncate=80)
    return 0


def entry() -> None:
    """Console-script entry point: the exit code always reaches the shell or the scheduler."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
