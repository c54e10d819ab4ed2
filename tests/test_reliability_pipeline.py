"""Reliability of whole pipeline runs, each compared with one uninterrupted reference run.

- conservation: `webscale-rl audit` passes after a run, and names the stage whose output lost
  a row;
- determinism: other shuffle partitions, input splits and engine batch sizes give equal tables;
- crash and resume: SIGKILL at a commit point of every stage in turn, rerun the same command:
  same tables, finished work skipped, no LLM request sent twice;
- a Spark task whose Python worker dies once is retried to the same tables;
- two pipelines writing one lakehouse at once: no duplicates, audit passes.

Every stage in `pipeline.STAGES` at test time is covered; the LLM stages use the simulated
engine with its per-request call-count file.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from webscale_rl.cli import main
from webscale_rl.jobs.base import load_stage
from webscale_rl.jobs.pipeline import STAGES

REPO = Path(__file__).resolve().parent.parent
HOSTILE = REPO / "tests" / "data" / "hostile"


def _load_bench():
    spec = importlib.util.spec_from_file_location(
        "bench_reliability", REPO / "bench" / "reliability.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


rel = _load_bench()
SAMPLE = str(rel.SAMPLE)
STAGES_WITH_INPUT = [s for s in STAGES if load_stage(s).INPUT is not None]


@dataclass
class Reference:
    work: Path
    lakehouse: Path
    tables: dict


def _set_args(sets: list[str]) -> list[str]:
    return [x for s in sets for x in ("--set", s)]


def run_in_process(work: Path, sets: list[str], lakehouse: Path | None = None) -> int:
    """The CLI pipeline run in this process (the session's Spark), MLflow in work/mlflow.db."""
    lakehouse = lakehouse or work / "lh"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{work}/mlflow.db")
        mp.chdir(work)  # run reports and anything else written relative to cwd stay here
        return main(["--lakehouse", str(lakehouse), *_set_args(sets), "run", "--input", SAMPLE])


def audit_in_process(mlflow_db: Path, lakehouse: Path, capsys) -> tuple[int, str]:
    """`webscale-rl audit` of the latest run in that MLflow store; (exit code, its output)."""
    capsys.readouterr()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{mlflow_db}")
        rc = main(["--lakehouse", str(lakehouse), "audit"])
    return rc, capsys.readouterr().out


@pytest.fixture(scope="module")
def reference(spark, tmp_path_factory) -> Reference:
    work = tmp_path_factory.mktemp("reference")
    assert run_in_process(work, rel.common_sets(work)) == 0
    return Reference(work, work / "lh", rel.snapshot(spark, work / "lh"))


def assert_same_tables(reference: Reference, spark, lakehouse: Path) -> None:
    got = rel.snapshot(spark, lakehouse)
    assert rel.diff_snapshots(reference.tables, got) == {}
    assert set(got) >= {"documents", "rejects"}


def assert_unique_keys(spark, lakehouse: Path) -> None:
    """No output table holds a key twice, no (stage, row_id) is rejected twice."""
    from pyspark.sql import functions as F

    from webscale_rl import tables
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
    rc, out = audit_in_process(reference.work / "mlflow.db", reference.lakehouse, capsys)
    assert rc == 0, out
    assert "every row accounted for" in out
    for stage in STAGES_WITH_INPUT:
        assert stage in out


@pytest.mark.parametrize("stage", STAGES_WITH_INPUT)
def test_audit_names_the_stage_that_lost_a_row(reference, spark, capsys, stage):
    from pyspark.sql import functions as F

    from webscale_rl import tables
    from webscale_rl.config import load_config

    module = load_stage(stage)
    cfg = load_config(lakehouse=str(reference.lakehouse))
    ref = tables.table_ref(cfg, module.OUTPUT)
    table = tables.delta_table(spark, ref)
    before = tables.version(spark, ref)
    row = tables.read(spark, ref).select(module.KEY).orderBy(module.KEY).first()
    assert row is not None, f"{stage} wrote no rows on the sample corpus"
    table.delete(F.col(module.KEY) == row[0])
    try:
        rc, out = audit_in_process(reference.work / "mlflow.db", reference.lakehouse, capsys)
    finally:
        table.restoreToVersion(before)
    assert rc == 1, out
    assert f"GAPS in: {stage}" in out.splitlines()[-1]


# ----------------------------------------------------------------------------- determinism


def test_same_tables_with_other_partitions_splits_and_batches(reference, spark, tmp_path):
    """5 shuffle partitions instead of 2, the input read in ~8 KB splits, engine batches of 3."""
    conf = spark.conf
    saved = {
        k: conf.get(k)
        for k in ("spark.sql.shuffle.partitions", "spark.sql.files.maxPartitionBytes")
    }
    conf.set("spark.sql.shuffle.partitions", "5")
    conf.set("spark.sql.files.maxPartitionBytes", "8192")
    try:
        assert run_in_process(tmp_path, [*rel.common_sets(tmp_path), "llm.batch_size=3"]) == 0
    finally:
        for k, v in saved.items():
            conf.set(k, v)
    assert_same_tables(reference, spark, tmp_path / "lh")


# ----------------------------------------------------------------------------- crash and resume


@pytest.mark.slow
def test_crash_at_every_stage_then_resume(reference, spark, tmp_path, capsys):
    plan = rel.crash_plan(list(STAGES))
    assert {s for s, _ in plan} >= {"ingest", "filter"}
    args = rel.cli_args(tmp_path / "lh", rel.common_sets(tmp_path), SAMPLE, tmp_path / "mlflow.db")
    chain = rel.crash_chain(args, plan, cwd=tmp_path)

    killed = [(s, p) for s, p, rc in chain.crashes if rc == -signal.SIGKILL]
    assert killed == plan, f"the hook did not fire at: {set(plan) - set(killed)}"
    assert chain.final_rc == 0, chain.final_stderr[-3000:]
    # Each rerun wrote nothing new for the stages finished before the previous crash.
    order = list(STAGES)
    for k, out in enumerate(chain.outputs[1:], start=1):
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
