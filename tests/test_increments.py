"""Stages read only the input rows inserted since they last finished (webscale_rl/increments.py).

Each test makes one row "unfinished" behind the stage's back (deleted from its output): a stage
reading the change feed does not see it again, one reading the whole input does. That is how
the tests tell which of the two was read; results are the same either way for real runs.
"""

import pytest
from pyspark.sql.types import StringType, StructField, StructType

from webscale_rl import increments, reject_reasons, tables
from webscale_rl.row_stage import row_stage

SCHEMA = StructType([StructField(c, StringType()) for c in ("doc_id", "text", "run_id")])


def add_rows(spark, cfg, ids, change_feed=True):
    ref = tables.table_ref(cfg, "documents")
    if change_feed:
        tables.create_if_missing(spark, ref, SCHEMA)
    rows = [(i, f"text of {i}", None) for i in ids]
    spark.createDataFrame(rows, SCHEMA).write.format("delta").mode("append").save(ref)


def run(spark, cfg):
    def keep_all(pdf):  # nested: pickled by value for the Python workers
        out = pdf.copy()
        out["_row_id"] = out["doc_id"]
        out["_reject_reason"] = None
        out["_reject_detail"] = None
        return out

    return row_stage(
        spark, cfg, "filter", "documents", "documents_filtered", SCHEMA, "doc_id", keep_all
    )


def output_ids(spark, cfg):
    out = tables.read(spark, tables.table_ref(cfg, "documents_filtered"))
    return sorted(r.doc_id for r in out.select("doc_id").collect())


def forget(spark, cfg, doc_id):
    """Delete a finished row from the output, as if it had never been done."""
    tables.delta_table(spark, tables.table_ref(cfg, "documents_filtered")).delete(
        f"doc_id = '{doc_id}'"
    )


def test_a_run_reads_only_rows_inserted_since_the_last_finished_one(spark, make_cfg, monkeypatch):
    cfg = make_cfg()
    add_rows(spark, cfg, ["d1", "d2"])
    run(spark, cfg)
    in_ref = tables.table_ref(cfg, "documents")
    assert increments.last_finished(spark, cfg, "filter", in_ref) == tables.version(spark, in_ref)
    out_ref = tables.table_ref(cfg, "documents_filtered")
    properties = spark.sql(f"DESCRIBE DETAIL delta.`{out_ref}`").first()["properties"]
    assert properties.get("delta.enableChangeDataFeed") == "true"  # for the next stage

    # Nothing new: nothing read, nothing recorded.
    progress = tables.version(spark, increments.progress_ref(cfg))
    again = run(spark, cfg)
    assert (again.rows_in, again.rows_out) == (0, 0)
    assert tables.version(spark, increments.progress_ref(cfg)) == progress

    forget(spark, cfg, "d1")
    add_rows(spark, cfg, ["d3"])
    result = run(spark, cfg)
    assert output_ids(spark, cfg) == ["d2", "d3"]  # d1 is older than the record: not read
    assert (result.rows_in, result.rows_out, result.skipped) == (1, 1, 0)  # rows read: d3
    assert any("change data feed" in n for n in result.notes)

    # A crash after the commit, before the record: the rerun reads d5 again, finds it done
    # (no pending check runs first: the commit's own anti-join does), and records it.
    add_rows(spark, cfg, ["d5"])
    with monkeypatch.context() as crash:
        crash.setattr(increments, "record_finished", lambda *a: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            run(spark, cfg)
    result = run(spark, cfg)
    assert (result.rows_in, result.rows_out, result.skipped) == (1, 0, 1)
    assert increments.last_finished(spark, cfg, "filter", in_ref) == tables.version(spark, in_ref)

    # The whole input (read_changes=false) finds d1 again.
    whole = make_cfg("read_changes=false", lakehouse=cfg.lakehouse)
    result = run(spark, whole)
    assert output_ids(spark, cfg) == ["d1", "d2", "d3", "d5"]
    assert result.rows_out == 1

    # Changes older than VACUUM's retention are not read from the feed (their files may be
    # gone): the whole input is, and finds a forgotten row.
    forget(spark, cfg, "d2")
    add_rows(spark, cfg, ["d4"])
    monkeypatch.setattr(increments, "FEED_SAFE_HOURS", -1.0)
    result = run(spark, cfg)
    assert output_ids(spark, cfg) == ["d1", "d2", "d3", "d4", "d5"]
    assert any("VACUUM" in n for n in result.notes)


def test_redone_rejects_read_the_whole_input(spark, cfg):
    """A retryable reject is older than the record: the run reads everything to redo it."""
    from pyspark.sql import functions as F

    add_rows(spark, cfg, ["d1", "d2"])
    run(spark, cfg)
    forget(spark, cfg, "d1")
    failed = spark.createDataFrame([("d1",)], "row_id string").select(
        F.lit("filter").alias("stage"),
        "row_id",
        F.col("row_id").alias("doc_id"),
        F.lit(reject_reasons.ENGINE_FAILED).alias("reason"),
        F.lit("boom").alias("detail"),
        F.lit("earlier").alias("run_id"),
        F.current_timestamp().alias("rejected_at"),
    )
    tables.write_rejects(spark, cfg, failed, stage="filter")
    result = run(spark, cfg)
    assert output_ids(spark, cfg) == ["d1", "d2"]
    assert any("rejects are redone" in n for n in result.notes)
    assert reject_reasons.redo_ids(spark, cfg, "filter") is None  # its reject is superseded


def test_an_input_without_change_feed_is_read_whole(spark, cfg):
    add_rows(spark, cfg, ["d1", "d2"], change_feed=False)
    run(spark, cfg)
    forget(spark, cfg, "d1")
    add_rows(spark, cfg, ["d3"], change_feed=False)
    result = run(spark, cfg)
    assert output_ids(spark, cfg) == ["d1", "d2", "d3"]
    assert any("no change data feed" in n for n in result.notes)
