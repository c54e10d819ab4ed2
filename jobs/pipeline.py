"""The stages in the order the pipeline runs them, the runner, and explicit skipping.

The stages, their tables and which can be skipped come from their declarations
(webscale_rl/stages.py): the runner never fakes a stage and reports what it ran.

Skipping is explicit. Every stage reads its own input table (annotate reads
`documents_deduped`, publish `qa_clean`); when that table does not exist the run stops before
the first stage and names the stage to run. A user who means to leave a stage out says so with
`--allow-skip <stage>` (config `allow_skip`): that stage does not run, and the stage after it
reads the skipped stage's input table instead (an already-filtered corpus: `--allow-skip
filter`, and dedup reads `documents`). Only stages that drop rows without changing their kind
can be skipped (SKIPPABLE). The skip is recorded in every commit of the stage after it
(userMetadata `skipped_stages`), the MLflow run (tag `webscale_rl.skipped_stages`, param
`allow_skip`), and publish carries every skip upstream into the `qa` commit and the card.
"""

from __future__ import annotations

import sys

from webscale_rl import stages as declarations
from webscale_rl.config import Config
from webscale_rl.errors import WebscaleError
from webscale_rl.jobs.base import StageResult, load_stage, run_stage

NAME = "pipeline"

# stage name -> module under webscale_rl.jobs, in pipeline order, from the stage declarations
STAGES: dict[str, str] = {decl.name: decl.module for decl in declarations.STAGES}
# Stages whose output rows are a subset of their input rows, of the same kind: the stage after
# one can read its input instead. (annotate, generate and verify add what the next one needs.)
SKIPPABLE = declarations.SKIPPABLE


def producer(logical: str) -> str | None:
    """The stage whose output is this logical table."""
    return next((s for s in STAGES if load_stage(s).OUTPUT == logical), None)


def resolve_input(cfg: Config, name: str) -> tuple[str | None, list[str]]:
    """(logical input table, stages skipped to get there) of a stage under `allow_skip`."""
    logical, skipped = load_stage(name).INPUT, []
    while logical is not None and producer(logical) in cfg.allow_skip:
        skipped.append(producer(logical))
        logical = load_stage(skipped[-1]).INPUT
    return logical, skipped


def stage_config(cfg: Config, name: str) -> Config:
    """The config a stage runs with: its input table name points at the resolved table."""
    from webscale_rl import tables

    logical, skipped = resolve_input(cfg, name)
    if not skipped:
        return cfg
    names = {load_stage(name).INPUT: tables.table_name(cfg, logical)}
    return cfg.model_copy(update={"tables": cfg.tables.model_copy(update=names)})


def plan(cfg: Config, stages: list[str] | None = None) -> list[str]:
    """The stages to run, in pipeline order: `stages` (default: all but the skipped ones)."""
    unknown = [s for s in [*(stages or []), *cfg.allow_skip] if s not in STAGES]
    if unknown:
        raise WebscaleError(f"unknown stage(s) {unknown}; stages: {', '.join(STAGES)}")
    fixed = [s for s in cfg.allow_skip if s not in SKIPPABLE]
    if fixed:
        raise WebscaleError(
            f"cannot skip {', '.join(fixed)}: the stage after it needs what it adds; "
            f"stages that can be skipped: {', '.join(SKIPPABLE)}"
        )
    both = [s for s in stages or [] if s in cfg.allow_skip]
    if both:
        raise WebscaleError(f"stage(s) {both} are both to run and to skip (--allow-skip)")
    if stages:
        return [s for s in STAGES if s in stages]
    return [s for s in STAGES if s not in cfg.allow_skip]


def check_inputs(spark, cfg: Config, names: list[str]) -> None:
    """Before any work: every stage's input is written by an earlier stage of this run or
    exists, else a clear error naming the stage to run (or to skip explicitly)."""
    from webscale_rl import tables

    for i, name in enumerate(names):
        logical, _ = resolve_input(cfg, name)
        if logical is None or producer(logical) in names[:i]:
            continue
        ref = tables.table_ref(cfg, logical)
        if tables.exists(spark, ref):
            continue
        before = producer(logical)
        hint = ""
        if before in SKIPPABLE:
            instead = tables.table_name(cfg, load_stage(before).INPUT)
            hint = (
                f", or skip it explicitly with --allow-skip {before} ({name} then reads {instead})"
            )
        raise WebscaleError(
            f"stage {name}: input table {ref} does not exist: run stage {before} first{hint}"
        )


def preflight(spark, cfg: Config, names: list[str]) -> None:
    """Before any work, the checks of every stage from the first one run to the end of the
    pipeline (a module's `preflight(spark, cfg) -> notes`, e.g. decontaminate's benchmark
    files): a deployment that runs one stage per task stops at its first task, not after the
    GPU stages. Stages skipped with --allow-skip are not checked."""
    first = list(STAGES).index(names[0]) if names else len(STAGES)
    for name in list(STAGES)[first:]:
        check = getattr(load_stage(name), "preflight", None)
        if check is not None and name not in cfg.allow_skip:
            for note in check(spark, cfg):
                print(f"[{name}] {note}", flush=True)


def run(spark, cfg: Config, stages: list[str] | None = None) -> list[StageResult]:
    """Run the given stages (default: all not skipped) in pipeline order inside the caller's
    MLflow run."""
    from webscale_rl import tracking

    names = plan(cfg, stages)
    check_inputs(spark, cfg, names)
    preflight(spark, cfg, names)
    skipped = sorted({s for n in names for s in resolve_input(cfg, n)[1]}, key=list(STAGES).index)
    if skipped:
        tracking.set_tags(cfg, {"webscale_rl.skipped_stages": ",".join(skipped)})
    results = []
    for name in names:
        stage_cfg = stage_config(cfg, name)
        before = resolve_input(cfg, name)[1]
        if before:
            print(f"[{name}] skipping {', '.join(before)} (--allow-skip)", flush=True)
        results.append(run_stage(spark, stage_cfg, load_stage(name)))
    return results


if __name__ == "__main__":
    from webscale_rl.cli import main as cli_main

    sys.exit(cli_main(["run", *sys.argv[1:]]))
