"""The CLI end to end in-process: a stage run tracked in MLflow, SQL over the tables, exit codes."""

import json
import shutil

import pytest

from webscale_rl import tables
from webscale_rl.cli import main
from webscale_rl.config import load_config


@pytest.fixture(scope="module")
def tracked_run(spark, tmp_path_factory, shared_data):
    """One tracked `stage ingest` for the module; a test that writes more copies it first."""
    tmp = tmp_path_factory.mktemp("cli_tracking")
    lakehouse = tmp / "lh"
    uri = f"sqlite:///{tmp}/mlflow.db"
    argv = [
        "--lakehouse",
        str(lakehouse),
        "--set",
        "spark.shuffle_partitions=2",
        "stage",
        "ingest",
        "--input",
        str(shared_data / "web/cc/dolma-crawl-sample-0000.warc.gz"),
    ]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("SECRET_TEST_TOKEN", "sk-should-never-appear")
        assert main(argv) == 0
    return lakehouse, uri


def test_stage_run_is_tracked_and_linked_to_delta(spark, tracked_run):
    import mlflow

    lakehouse, uri = tracked_run
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("webscale-rl")
    runs = client.search_runs([exp.experiment_id])
    parent = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    child = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(parent) == 1 and len(child) == 1
    stage = child[0]
    assert stage.data.tags["webscale_rl.stage"] == "ingest"
    m = stage.data.metrics
    assert m["rows_in"] == m["rows_out"] + m["rows_rejected"] + m["rows_skipped"] > 0
    assert parent[0].data.params["ingest.format"] == "auto"
    cfg = load_config(lakehouse=str(lakehouse))
    ref = tables.table_ref(cfg, "documents")
    assert any(k.startswith("output.") and ref in v for k, v in stage.data.tags.items())
    # the Delta commit leads back to the run
    hist = tables.delta_table(spark, ref).history().select("userMetadata").collect()
    metas = [json.loads(r.userMetadata) for r in hist if r.userMetadata]
    assert {m["run_id"] for m in metas} == {parent[0].info.run_id}
    # and every row carries it
    run_ids = {r.run_id for r in tables.read(spark, ref).select("run_id").distinct().collect()}
    assert run_ids == {parent[0].info.run_id}


def test_sql_over_tables_and_time_travel(spark, tracked_run, shared_data, capsys, tmp_path):
    lakehouse = tmp_path / "lh"
    shutil.copytree(tracked_run[0], lakehouse)  # the shared run stays as it was
    cfg = load_config(lakehouse=str(lakehouse))
    ref = tables.table_ref(cfg, "documents")
    first = tables.read(spark, ref).count()
    more = shared_data / "web/cc/dolma-crawl-sample-0001.warc.gz"
    assert main(["--lakehouse", str(lakehouse), "stage", "ingest", "--input", str(more)]) == 0
    latest = tables.read(spark, ref).count()
    assert latest > first
    capsys.readouterr()
    for version, expected in ((0, first), (tables.version(spark, ref), latest)):
        query = f"SELECT count(*) AS n_docs FROM documents VERSION AS OF {version}"
        assert main(["--lakehouse", str(lakehouse), "sql", query]) == 0
        assert f"|{expected}|" in capsys.readouterr().out.replace(" ", "")


def test_sql_error_is_clear(spark, tracked_run, capsys):
    lakehouse, _ = tracked_run
    code = main(["--lakehouse", str(lakehouse), "sql", "SELECT nope FROM documents"])
    assert code == 1
    err = capsys.readouterr().err
    assert "SQL failed" in err and "Traceback" not in err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["stage", "no-such-stage"])
    assert e.value.code == 2
    assert main([]) == 2


def test_bad_config_exits_1(capsys):
    assert main(["--set", "nope.key=1", "config", "show"]) == 1
    assert "unknown config key 'nope'" in capsys.readouterr().err


def test_config_show(capsys):
    assert main(["--set", "seed=7", "config", "show"]) == 0
    out = capsys.readouterr().out
    assert "seed: 7" in out and "lakehouse:" in out
