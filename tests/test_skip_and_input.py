"""No silent defaults: a run names its input, a missing upstream table stops the run before any
work and names the stage to run, and a stage is skipped only when the run says so
(`--allow-skip`), e.g. for an already-filtered corpus: `run --stages ingest,dedup,annotate`."""

import json
import subprocess
from pathlib import Path

from webscale_rl import tables
from webscale_rl.cli import main
from webscale_rl.config import load_config
from webscale_rl.jobs.ingest import sample_corpus_path

REPO = Path(__file__).resolve().parent.parent
NO_MLFLOW = ["--set", "mlflow.enabled=false", "--set", "spark.shuffle_partitions=2"]


def test_run_without_input_is_a_usage_error(tmp_path, capsys):
    lakehouse = tmp_path / "lh"
    for command in (["run"], ["stage", "ingest"], ["run", "--stages", "ingest,filter"]):
        assert main(["--lakehouse", str(lakehouse), *NO_MLFLOW, *command]) == 2, command
        err = capsys.readouterr().err
        assert "--input" in err and "ingest.input" in err and "make demo" in err
    assert not lakehouse.exists()  # stopped before Spark and before any table


def test_make_demo_names_its_input():
    out = subprocess.run(
        ["make", "-n", "demo"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    line = next(x for x in out.splitlines() if "run --input" in x)
    shared = REPO.parent / "shared" / "data" / "web" / "web_pages.warc.gz"
    expected = "web_pages.warc.gz" if shared.exists() else "sample_corpus/sample_corpus.jsonl"
    assert expected in line


def tiny_corpus(tmp_path) -> Path:
    """Three pages of the shipped corpus and an exact copy of the first (a duplicate)."""
    lines = Path(sample_corpus_path()).read_text(encoding="utf-8").splitlines()[:3]
    first = json.loads(lines[0])
    copy = json.dumps({**first, "id": "copy", "url": first["url"] + "?copy"})
    path = tmp_path / "corpus.jsonl"
    path.write_text("\n".join([*lines, copy]) + "\n", encoding="utf-8")
    return path


def test_already_filtered_corpus_skips_filter_explicitly(spark, tmp_path, capsys):
    lakehouse = tmp_path / "lh"
    base = ["--lakehouse", str(lakehouse), *NO_MLFLOW, "run", "--input", str(tiny_corpus(tmp_path))]
    cfg = load_config(lakehouse=str(lakehouse))

    # Leaving filter out is not enough: the run stops before ingest and says what to do.
    capsys.readouterr()
    assert main([*base, "--stages", "ingest,dedup,annotate"]) == 1
    err = capsys.readouterr().err
    assert "run stage filter first" in err and "--allow-skip filter" in err
    assert not tables.exists(spark, tables.table_ref(cfg, "documents"))
    # A stage cannot be both run and skipped.
    assert main([*base, "--stages", "ingest,filter", "--allow-skip", "filter"]) == 1
    assert "both to run and to skip" in capsys.readouterr().err

    assert main([*base, "--stages", "ingest,dedup,annotate", "--allow-skip", "filter"]) == 0
    assert not tables.exists(spark, tables.table_ref(cfg, "filtered"))
    deduped = tables.read(spark, tables.table_ref(cfg, "deduped"))
    # dedup read `documents`: no quality_stats needed, every other column passed through
    assert "quality_stats" not in deduped.columns and "lang_score" in deduped.columns
    assert deduped.count() == 3
    history = tables.delta_table(spark, tables.table_ref(cfg, "deduped")).history(1).first()
    assert json.loads(history["userMetadata"])["skipped_stages"] == ["filter"]
    # annotate decided on every deduplicated document
    annotations = tables.read(spark, tables.table_ref(cfg, "annotations")).count()
    rejects = tables.read(spark, tables.table_ref(cfg, "rejects")).where("stage = 'annotate'")
    assert annotations + rejects.count() == 3


def test_annotate_without_dedup_stops_and_names_it(spark, tmp_path, capsys):
    lakehouse = tmp_path / "lh"
    cfg = load_config(lakehouse=str(lakehouse))
    from webscale_rl.schemas.tables import FILTERED

    spark.createDataFrame([], FILTERED).write.format("delta").save(
        tables.table_ref(cfg, "filtered")
    )
    capsys.readouterr()
    assert main(["--lakehouse", str(lakehouse), *NO_MLFLOW, "stage", "annotate"]) == 1
    err = capsys.readouterr().err
    assert "run stage dedup first" in err and "--allow-skip dedup" in err
    assert not tables.exists(spark, tables.table_ref(cfg, "annotations"))
