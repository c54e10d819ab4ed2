"""Reliability of whole pipeline runs, each compared with one uninterrupted reference run.

- conservation: `webscale-rl audit` passes after a run, and names each stage whose output lost
  a row;
- determinism: other shuffle partitions, input splits, engine batch sizes and commit chunks give
  equal tables;
- crash and resume: a crash at a commit point of every stage in turn (SIGKILL of a fresh process
  at two stages, an exception in this process at the others), rerun the same command: same
  tables, finished work skipped, no LLM request sent twice;
- a Spark task whose Python worker dies once is retried to the same tables;
- two pipelines writing one lakehouse at once: no duplicates, audit passes.

Every stage in `pipeline.STAGES` at test time is covered; the LLM stages use the simulated
engine with its per-request call-count file. The reference run is the session's shared one
(`reference` in conftest.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Reference, load_bench, run_pipeline_in_process

from webscale_rl import tables
from webscale_rl.cli import main
from webscale_rl.jobs.base import load_stage
from webscale_rl.jobs.pipeline import STAGES

REPO = Path(__file__).resolve().parent.parent
HOSTILE = REPO / "tests" / "data" / "hostile"

rel = load_bench("reliability")
SAMPLE = str(rel.SAMPLE)
STAGES_WITH_INPUT = [s for s in STAGES if load_stage(s).INPUT is not None]


def audit_in_process(mlflow_db: Path, lakehouse: Path, capsys) -> tuple[int, str]:
    """`webscale-rl audit` of the latest run in that MLflow store; (exit code, its output)."""
    capsys.readouterr()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{mlflow_db}")
        rc = main(["--lakehouse", str(lakehouse), "audit"])
    return rc, capsys.readouterr().out


def assert_same_tables(reference: Reference, spark, lakehouse: Path) -> None:
    got = rel.snapshot(spark, lakehouse)
    assert rel.diff_snapshots(reference.tables, got) == {}
    assert set(got) >= {"documents", "rejects"}


def assert_unique_keys(spark, lakehouse: Path) -> None:
    """No output table holds a key twice, no (stage, row_id) is rejected twice."""
    from pyspark.sql import functions as F

    from webscale_rl.config import load_config

    cfg = load_config(lakehouse=str(lakehouse))
    checks = [(tables.table_ref(cfg, "rejects"), ["stage", "row_id"])]
    checks += [(tables.table_ref(cfg, load_stage(s).OUTPUT), [load_stage(s).KEY]) for s in STAGES]
    for ref, keys in checks:
        if tables.exists(spark, ref):
            dups = tables.read(spark, ref).groupBy(*keys).count().where(F.col("count") > 1)
            assert dups.count() == 0, f"duplicate {keys} in {ref}: {dups.limit(5).collect()}"


# ----------------------------------------------------------------------------- conservation


def test_reference_run_has_every_stage_and_audit_passes(reference, capsys):
    rc, out = audit_in_process(reference.mlflow_db, reference.lakehouse, capsys)
    assert rc == 0, out
    assert "every row accounted for" in out
    for stage in STAGES_WITH_INPUT:
        assert stage in out


def audit_missing(out: str) -> dict[str, int]:
    """Stage -> the `missing` column of the audit table `webscale-rl audit` printed."""
    missing = {}
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] in STAGES and "|" in parts and parts[-2].isdigit():
            missing[parts[0]] = int(parts[-2])
    return missing


def test_audit_names_each_stage_that_lost_a_row(reference, spark, capsys):
    """One row deleted from every stage's output, each from another document, so no stage's
    loss hides or adds to another's: the audit names exactly those stages, one row missing each.
    (One audit instead of one per stage; the lakehouse is restored afterwards.)"""
    from pyspark.sql import functions as F

    from webscale_rl.config import load_config

    cfg = load_config(lakehouse=str(reference.lakehouse))
    used_docs: list[str] = []
    deleted = []  # (table, version before)
    try:
        for stage in STAGES_WITH_INPUT:
            module = load_stage(stage)
            ref = tables.table_ref(cfg, module.OUTPUT)
            df = tables.read(spark, ref)
            if used_docs:
                df = df.where(~F.col("doc_id").isin(used_docs))
            row = df.select(module.KEY, "doc_id").orderBy(module.KEY).first()
            assert row is not None, f"{stage}: no row left from a document not used yet"
            used_docs.append(row["doc_id"])
            deleted.append((ref, tables.version(spark, ref)))
            tables.delta_table(spark, ref).delete(F.col(module.KEY) == row[0])
        rc, out = audit_in_process(reference.mlflow_db, reference.lakehouse, capsys)
    finally:
        for ref, before in deleted:
            tables.delta_table(spark, ref).restoreToVersion(before)
    assert rc == 1, out
    assert out.splitlines()[-1] == f"GAPS in: {', '.join(STAGES_WITH_INPUT)}", out
    assert audit_missing(out) == {stage: 1 for stage in STAGES_WITH_INPUT}, out


# ----------------------------------------------------------------------------- determinism


@pytest.mark.slow  # a second whole pipeline; `make test-slow` builds the reference anyway
def test_same_tables_with_other_partitions_splits_and_batches(reference, spark, tmp_path):
    """5 shuffle partitions instead of 2, the input read in ~8 KB splits, engine batches of 3,
    and each LLM stage committed in 2 chunks instead of 1."""
    conf = spark.conf
    saved = {
        k: conf.get(k)
        for k in ("spark.sql.shuffle.partitions", "spark.sql.files.maxPartitionBytes")
    }
    conf.set("spark.sql.shuffle.partitions", "5")
    conf.set("spark.sql.files.maxPartitionBytes", "8192")
    sets = [*rel.common_sets(tmp_path), "llm.batch_size=3", "llm_stages.commit_chunks=2"]
    try:
        assert run_pipeline_in_process(tmp_path, sets) == 0
    finally:
        for k, v in saved.items():
            conf.set(k, v)
    assert_same_tables(reference, spark, tmp_path / "lh")


# ----------------------------------------------------------------------------- crash and resume


class SimulatedCrash(BaseException):
    """Raised at an armed commit point; a BaseException so no `except Exception` swallows it."""


# Real process death (SIGKILL in a fresh process) at a plain stage and at an LLM stage; the other
# points crash inside this process, which leaves the same tables, journal and staging behind
# (the hook fires after a commit step, never inside one) at a fraction of a JVM start each.
SIGKILL_STAGES = ("ingest", "annotate")


def crash_in_process(work: Path, sets: list[str], stage: str, point: str, capsys) -> str:
    """Run the pipeline here with the commit hook armed at stage:point; the run's stdout."""

    def hook(at_stage: str, at_point: str) -> None:
        if (at_stage, at_point) == (stage, point):
            raise SimulatedCrash(f"{stage}:{point}")

    capsys.readouterr()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tables, "_crash_point", hook)
        with pytest.raises(SimulatedCrash):
            run_pipeline_in_process(work, sets)
    return capsys.readouterr().out


@pytest.mark.slow
def test_crash_at_every_stage_then_resume(reference, spark, tmp_path, capsys):
    plan = rel.crash_plan(list(STAGES))
    assert {s for s, _ in plan} >= {"ingest", "filter", *SIGKILL_STAGES}
    sets = rel.common_sets(tmp_path)
    args = rel.cli_args(tmp_path / "lh", sets, SAMPLE, tmp_path / "mlflow.db")
    outputs, killed = [], []
    for stage, point in plan:
        if stage in SIGKILL_STAGES:
            proc = rel.run_cli(args, env={rel.CRASH_ENV: f"{stage}:{point}"}, cwd=tmp_path)
            assert proc.returncode == -signal.SIGKILL, (
                f"the hook did not fire at {stage}:{point} (rc {proc.returncode}): "
                f"{proc.stderr[-3000:]}"
            )
            killed.append((stage, point))
            outputs.append(proc.stdout)
        else:
            outputs.append(crash_in_process(tmp_path, sets, stage, point, capsys))
    capsys.readouterr()
    assert run_pipeline_in_process(tmp_path, sets) == 0
    outputs.append(capsys.readouterr().out)

    assert killed == [(s, p) for s, p in plan if s in SIGKILL_STAGES]
    # Each rerun wrote nothing new for the stages finished before the previous crash.
    order = list(STAGES)
    for k, out in enumerate(outputs[1:], start=1):
        crashed_stage = plan[k - 1][0]
        lines = rel.stage_lines(out)
        for stage, _ in plan:
            if order.index(stage) < order.index(crashed_stage):
                assert lines[stage]["kept"] == 0, f"run {k}: {stage} redid work: {lines[stage]}"
    diffs = rel.diff_snapshots(reference.tables, rel.snapshot(spark, tmp_path / "lh"))
    repeated = rel.repeated_requests(tmp_path / "llm_calls.txt")
    calls = sum(rel.read_call_counts(tmp_path / "llm_calls.txt").values())
    with capsys.disabled():
        print(
            f"\nRELIABILITY crash points tried={len(plan)} killed={len(killed)} "
            f"rows lost={sum(d['lost'] for d in diffs.values())} "
            f"rows extra={sum(d['extra'] for d in diffs.values())} "
            f"llm requests={calls} repeated={len(repeated)} plan={plan}"
        )
    assert diffs == {}
    assert repeated == {}
    rc, out = audit_in_process(tmp_path / "mlflow.db", tmp_path / "lh", capsys)
    assert rc == 0, out


@pytest.mark.slow
def test_task_whose_worker_dies_once_is_retried_to_the_same_tables(reference, spark, tmp_path):
    marker = tmp_path / "worker-died"
    sets = [
        *rel.common_sets(tmp_path),
        "spark.master=local[2,4]",  # local mode retries a failed task only with [N,maxFailures]
        "llm.simulated_responder=flaky_responder:respond",
    ]
    env = {
        "WEBSCALE_RL_FLAKY_MARKER": str(marker),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(HOSTILE), os.environ.get("PYTHONPATH")])),
    }
    proc = rel.run_cli(rel.cli_args(tmp_path / "lh", sets, SAMPLE, tmp_path / "mlflow.db"), env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert marker.exists(), "no LLM request reached the flaky responder"
    assert_same_tables(reference, spark, tmp_path / "lh")
    assert rel.repeated_requests(tmp_path / "llm_calls.txt") == {}


# ----------------------------------------------------------------------------- concurrent runs


@pytest.mark.slow
def test_two_pipelines_on_one_lakehouse_at_once(reference, spark, tmp_path, capsys):
    lakehouse = tmp_path / "lh"
    procs = []
    for i in (1, 2):
        # each run has its own MLflow store: SQLite serialises writers and is not under test
        args = rel.cli_args(
            lakehouse,
            rel.common_sets(tmp_path, f"calls{i}.txt"),
            SAMPLE,
            tmp_path / f"mlflow{i}.db",
        )
        env = {k: v for k, v in os.environ.items() if k != rel.CRASH_ENV}
        # Output goes to files, not pipes: a full pipe would stall a run while we wait on the other.
        out = open(tmp_path / f"run{i}.out", "w")  # closed below
        err = open(tmp_path / f"run{i}.err", "w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "webscale_rl.cli", *args],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=err,
            text=True,
        )
        procs.append((proc, out, err, i))
    results = []
    for proc, out, err, i in procs:
        rc = proc.wait(timeout=1200)
        out.close()
        err.close()
        results.append(
            (rc, (tmp_path / f"run{i}.out").read_text(), (tmp_path / f"run{i}.err").read_text())
        )
    failed = [(rc, err) for rc, _, err in results if rc != 0]
    for rc, err in failed:
        # the JVM's shutdown hooks may log after our message: look for it, not at the last line
        said = [line for line in err.splitlines() if line.startswith("error:")]
        assert rc == 1 and said, f"unclear failure (rc {rc}):\n{err[-3000:]}"
    with capsys.disabled():  # which way it went belongs in the test log
        print(f"\nconcurrent runs: {2 - len(failed)} of 2 succeeded")
    assert len(failed) < 2, "both concurrent runs failed"
    assert_unique_keys(spark, lakehouse)
    assert_same_tables(reference, spark, lakehouse)
    for i, (rc, _, _) in enumerate(results, start=1):
        if rc == 0:
            audit_rc, out = audit_in_process(tmp_path / f"mlflow{i}.db", lakehouse, capsys)
            assert audit_rc == 0, out
