"""`webscale-rl report`: one self-contained HTML page for a run (funnel, domains, QA sample)."""

from __future__ import annotations

from webscale_rl.config import Config

NAME = "report"
HELP = "write an HTML report of a run (funnel, domains, QA sample)"
DESCRIPTION = (
    "Render the funnel chart, reject reasons, domain distribution and a sample of QA pairs of "
    "one run (default: the latest run of the experiment) into one self-contained HTML file, "
    "from the run's MLflow metrics and the Delta table versions it wrote. Prints the path."
)
EXAMPLE = "webscale-rl report --run 3f2a9c --out /tmp/run.html"


def add_arguments(p) -> None:
    p.add_argument("--run", metavar="RUN_ID", help="MLflow run id (default: the latest run)")
    p.add_argument(
        "--out",
        metavar="FILE",
        help="output HTML file (default: reports/webscale_rl_run_<id>.html)",
    )


def run(args, cfg: Config) -> int:
    from webscale_rl.reporting import render_report
    from webscale_rl.session import get_spark

    spark = get_spark(cfg)
    print(render_report(spark, cfg, run_id=args.run, out=args.out))
    return 0
