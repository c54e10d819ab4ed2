"""A stage's Spark jobs carry the job group `webscale-rl:<stage>`, so the Spark UI, its REST API
and event logs show which stage ran them (bench/scale.py reads bytes per stage this way)."""

from types import SimpleNamespace

from webscale_rl.config import load_config
from webscale_rl.jobs.base import run_stage
from webscale_rl.row_stage import StageResult


def test_a_stages_jobs_carry_its_group_and_later_jobs_do_not(spark, tmp_path):
    def run(spark, cfg):
        spark.range(10).count()
        return StageResult(stage="probe")

    cfg = load_config(overrides=["mlflow.enabled=false"], lakehouse=str(tmp_path))
    run_stage(spark, cfg, SimpleNamespace(NAME="probe", run=run))
    tracker = spark.sparkContext.statusTracker()
    ours = tracker.getJobIdsForGroup("webscale-rl:probe")
    assert ours
    spark.range(5).count()  # after the stage: no label left behind
    assert tracker.getJobIdsForGroup("webscale-rl:probe") == ours
    assert spark.sparkContext.getLocalProperty("spark.jobGroup.id") is None
