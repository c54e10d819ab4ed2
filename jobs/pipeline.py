"""The stages in the order the pipeline runs them, and the runner.

A stage is listed here only once it exists: the runner never fakes one and reports what it ran.
"""

from __future__ import annotations

import sys

from webscale_rl.config import Config
from webscale_rl.jobs.base import StageResult, load_stage, run_stage

NAME = "pipeline"

# stage name -> module under webscale_rl.jobs
STAGES: dict[str, str] = {
    "ingest": "ingest",
    "filter": "filter",
    "dedup": "dedup",
    "annotate": "annotate",
    "generate": "generate",
    "verify": "verify",
    "qa_dedup": "qa_dedup",
    "decontaminate": "decontaminate",
    "publish": "publish",  # the last stage: the qa table, its exports and card
}


def run(spark, cfg: Config, stages: list[str] | None = None) -> list[StageResult]:
    """Run the given stages (default: all) in pipeline order inside the caller's MLflow run."""
    names = list(STAGES) if not stages else [s for s in STAGES if s in stages]
    return [run_stage(spark, cfg, load_stage(name)) for name in names]


if __name__ == "__main__":
    from webscale_rl.cli import main as cli_main

    sys.exit(cli_main(["run", *sys.argv[1:]]))
