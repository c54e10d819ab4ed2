"""`webscale-rl audit`: check that every stage accounted for every input row."""

from __future__ import annotations

NAME = "audit"
HELP = "check rows in = rows kept + rows rejected for every stage"
DESCRIPTION = (
    "Check conservation for a run (default: the latest): over its MLflow metrics, rows in = rows "
    "written + rejected + done before; over the Delta tables, every input row of every stage is in "
    "the stage's output or in `rejects`. Exits 1 on any gap."
)
EXAMPLE = "webscale-rl --lakehouse ./lakehouse audit --run 4f1c2e..."


def add_arguments(parser) -> None:
    parser.add_argument(
        "--run", dest="run_id", help="MLflow run id of a pipeline run (default: latest)"
    )


def run(args, cfg) -> int:
    from webscale_rl.audit import audit, format_table, latest_run_id
    from webscale_rl.session import get_spark

    run_id = args.run_id or (latest_run_id(cfg) if cfg.mlflow.enabled else None)
    spark = get_spark(cfg)
    rows = audit(spark, cfg, run_id)
    print(f"audit of run {run_id or '(no MLflow run: tables only)'}")
    print(format_table(rows))
    bad = [r.stage for r in rows if not r.ok]
    if bad:
        print(f"GAPS in: {', '.join(bad)}")
        return 1
    print("every row accounted for")
    return 0
