"""Incremental ingest: an input already ingested and unchanged is not read again (issue 13).

Observed through the stage's counters (records read = `rows_in`, files read and skipped in the
metrics), never through timing.
"""

import json
import os

import pytest
from pyspark.sql import functions as F

from webscale_rl import cli, tables
from webscale_rl.jobs import ingest
from webscale_rl.udfs.read import ingested_inputs

TEXT = "The bridge over the river was finished in {year} after {n} years of work by the town."


class SimulatedCrash(BaseException):
    """Raised at an armed commit point; a BaseException so no `except Exception` swallows it."""


def write_jsonl(path, first: int, n: int, extra: tuple[int, ...] | list[int] = ()) -> None:
    """Documents first..first+n-1 (and `extra` ones) as JSON lines; a document is the same
    whichever file holds it."""
    with open(path, "w", encoding="utf-8") as fh:
        for i in [*range(first, first + n), *extra]:
            text = TEXT.format(year=1900 + i, n=i)
            doc = {"id": f"d{i}", "url": f"https://e.invalid/{i}", "text": text}
            fh.write(json.dumps(doc) + "\n")


def run_ingest(spark, cfg, folder):
    cfg.ingest.input = [f"{folder}/*.jsonl"]
    return ingest.run(spark, cfg)


def files_metrics(result) -> tuple[int, int]:
    return result.metrics["input_files_read"], result.metrics["input_files_skipped"]


def doc_count(spark, cfg) -> int:
    return tables.read(spark, tables.table_ref(cfg, "documents")).count()


@pytest.fixture()
def corpus(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", 0, 3)
    write_jsonl(folder / "b.jsonl", 3, 2)
    return folder


def test_rerun_over_the_same_files_reads_no_record(spark, cfg, corpus):
    first = run_ingest(spark, cfg, corpus)
    assert (first.rows_in, first.rows_out, files_metrics(first)) == (5, 5, (2, 0))
    out_ref = tables.table_ref(cfg, "documents")
    version = tables.version(spark, out_ref)

    second = run_ingest(spark, cfg, corpus)
    assert (second.rows_in, second.rows_out, second.rejected) == (0, 0, 0)
    assert files_metrics(second) == (0, 2)
    assert "read=0 skipped(ingested before, unchanged)=2" in second.notes[0]
    assert tables.version(spark, out_ref) == version  # nothing committed
    assert doc_count(spark, cfg) == 5


def test_an_appended_file_is_ingested_alone(spark, cfg, corpus):
    run_ingest(spark, cfg, corpus)
    write_jsonl(corpus / "c.jsonl", 5, 4)
    result = run_ingest(spark, cfg, corpus)
    assert (result.rows_in, result.rows_out, files_metrics(result)) == (4, 4, (1, 2))
    assert doc_count(spark, cfg) == 9


def test_a_modified_file_is_read_again_and_deduplicated_by_id(spark, cfg, corpus):
    run_ingest(spark, cfg, corpus)
    write_jsonl(corpus / "a.jsonl", 0, 3, extra=[9])  # the same 3 documents and one more
    result = run_ingest(spark, cfg, corpus)
    assert files_metrics(result) == (1, 1)
    assert (result.rows_in, result.rows_out, result.skipped) == (4, 1, 3)

    # Same size, newer modification time: read again too (the stamp says it may differ).
    stat = os.stat(corpus / "b.jsonl")
    os.utime(corpus / "b.jsonl", ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    touched = run_ingest(spark, cfg, corpus)
    assert files_metrics(touched) == (1, 1)
    assert (touched.rows_in, touched.rows_out, touched.skipped) == (2, 0, 2)
    assert doc_count(spark, cfg) == 6


def test_other_record_options_read_the_files_again(spark, make_cfg, corpus):
    run_ingest(spark, make_cfg(), corpus)
    changed = make_cfg("ingest.max_text_chars=5000")
    result = run_ingest(spark, changed, corpus)
    assert files_metrics(result) == (2, 0) and result.rows_in == 5
    # ...while an option that does not shape records changes nothing.
    same = make_cfg("ingest.max_text_chars=5000", "ingest.files_per_task=4")
    assert run_ingest(spark, same, corpus).rows_in == 0


def test_retrying_ingest_rejects_reads_the_files_again(spark, cfg, corpus):
    with open(corpus / "b.jsonl", "a", encoding="utf-8") as fh:
        fh.write("{not json\n")
    first = run_ingest(spark, cfg, corpus)
    assert first.rejects == {"malformed_json": 1}
    cfg.retry_rejects = ["engine_error"]  # another stage's reason: ingest has none to redo
    assert run_ingest(spark, cfg, corpus).rows_in == 0
    cfg.retry_rejects = ["malformed_json"]
    again = run_ingest(spark, cfg, corpus)
    assert files_metrics(again) == (2, 0) and again.rows_in == 6
    assert again.rejects == {"malformed_json": 1}


def test_crash_after_the_row_commit_before_the_record_reads_the_file_again(
    spark, cfg, corpus, monkeypatch
):
    def hook(stage, point):
        if (stage, point) == ("ingest", "output"):  # rows committed, inputs not yet recorded
            raise SimulatedCrash(f"{stage}:{point}")

    with monkeypatch.context() as mp:
        mp.setattr(tables, "_crash_point", hook)
        with pytest.raises(SimulatedCrash):
            run_ingest(spark, cfg, corpus)
    assert doc_count(spark, cfg) == 5  # the rows made it...
    assert not tables.exists(spark, ingested_inputs.table_ref(cfg))  # ...the record did not

    resumed = run_ingest(spark, cfg, corpus)
    assert files_metrics(resumed) == (2, 0)
    assert (resumed.rows_in, resumed.rows_out, resumed.skipped) == (5, 0, 5)
    assert run_ingest(spark, cfg, corpus).rows_in == 0
    assert doc_count(spark, cfg) == 5


def test_a_file_rejected_as_unreadable_is_not_recorded(spark, cfg, corpus, monkeypatch):
    """An I/O error may pass: the file is read again next run, not skipped for good."""
    a = next(p for p in ingest.expand(spark, [str(corpus)]) if p.endswith("a.jsonl"))
    real = ingest.raw_records

    def a_unreadable(spark, cfg, fmt, files, versions=None):
        rest = real(spark, cfg, fmt, [f for f in files if f != a], versions)
        reject = ingest._file_reject(a, fmt, "unreadable_file", "Input/output error")
        return rest.unionByName(spark.createDataFrame([reject], ingest.RAW_DDL))

    monkeypatch.setattr(ingest, "raw_records", a_unreadable)
    first = run_ingest(spark, cfg, corpus)
    assert (first.rows_out, first.rejects) == (2, {"unreadable_file": 1})
    monkeypatch.setattr(ingest, "raw_records", real)
    again = run_ingest(spark, cfg, corpus)
    assert files_metrics(again) == (1, 1)
    assert (again.rows_in, again.rows_out) == (3, 3)


def test_delta_input_is_read_again_only_at_a_new_version(spark, cfg, tmp_path):
    src = str(tmp_path / "source_table")
    rows = [(f"t{i}", f"https://t.invalid/{i}", TEXT.format(year=1800 + i, n=i)) for i in range(4)]
    ddl = "id string, url string, text string"
    spark.createDataFrame(rows[:3], ddl).write.format("delta").save(src)
    cfg.ingest.input = [src]
    assert ingest.run(spark, cfg).rows_in == 3
    assert ingest.run(spark, cfg).rows_in == 0

    spark.createDataFrame(rows[3:], ddl).write.format("delta").mode("append").save(src)
    result = ingest.run(spark, cfg)
    # A new version is read whole (see ingested_inputs: no change feed on a user's table); the
    # rows ingested before are found by id.
    assert (result.rows_in, result.rows_out, result.skipped) == (4, 1, 3)
    assert ingest.run(spark, cfg).rows_in == 0


def test_audit_balances_over_a_skipping_rerun(spark, make_cfg, corpus, tmp_path, capsys):
    cfg = make_cfg(mlflow=True)
    sets = [
        "--set",
        "mlflow.enabled=true",
        "--set",
        f"mlflow.tracking_uri={cfg.mlflow.tracking_uri}",
    ]
    argv = ["--lakehouse", cfg.lakehouse, *sets, "stage", "ingest", "--input", f"{corpus}/*.jsonl"]
    assert cli.main(argv) == 0
    write_jsonl(corpus / "c.jsonl", 5, 1)
    assert cli.main(argv) == 0
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("[ingest]")]
    assert [line.split(" kept=")[0] for line in lines] == [
        "[ingest] in=5",
        "[ingest] in=1",
        "[ingest] in=0",
    ]
    capsys.readouterr()
    assert cli.main(["--lakehouse", cfg.lakehouse, *sets, "audit"]) == 0
    row = next(r.split() for r in capsys.readouterr().out.splitlines() if r.startswith("ingest"))
    assert row[1:6] == ["0", "0", "0", "0", "0"]  # run in, out, rej, skip, gap: read nothing
    recorded = tables.read(spark, ingested_inputs.table_ref(cfg))
    assert recorded.select(F.countDistinct("path")).first()[0] == 3
