import os
import shutil
from pathlib import Path

import pytest

from webscale_rl import tables
from webscale_rl.cli import main
from webscale_rl.commands import maintain as m
from webscale_rl.errors import WebscaleError
from webscale_rl.schemas.tables import REJECTS


def parquet_files(path: str) -> int:
    """Data files in storage (Delta's own checkpoints in _delta_log are parquet too: not counted)."""
    return sum(
        1
        for root, _, files in os.walk(path)
        if "_delta_log" not in root
        for f in files
        if f.endswith(".parquet")
    )


@pytest.fixture(scope="module")
def fragmented_template(spark, tmp_path_factory):
    """A `rejects` table written in 12 small appends: 12+ small files (built once, copied)."""
    from pyspark.sql import functions as F

    from webscale_rl.config import load_config

    cfg = load_config(lakehouse=str(tmp_path_factory.mktemp("fragmented") / "lh"))
    ref = tables.table_ref(cfg, "rejects")
    for i in range(12):
        df = spark.range(i * 5, i * 5 + 5).select(
            F.lit("filter").alias("stage"),
            F.col("id").cast("string").alias("row_id"),
            F.lit(None).cast("string").alias("doc_id"),
            F.lit("too_short").alias("reason"),
            F.lit(None).cast("string").alias("detail"),
            F.lit("r").alias("run_id"),
            F.current_timestamp().alias("rejected_at"),
        )
        tables.conform(df, REJECTS).coalesce(1).write.format("delta").mode("append").save(ref)
    return Path(cfg.lakehouse)


@pytest.fixture()
def fragmented(make_cfg, fragmented_template):
    """A fresh copy of the fragmented table for a test that compacts or vacuums it (Delta's log
    names files relative to the table folder, so a copied folder is the same table)."""
    cfg = make_cfg()
    shutil.copytree(fragmented_template, cfg.lakehouse)
    return cfg, tables.table_ref(cfg, "rejects")


def test_optimize_compacts_and_forced_vacuum_deletes(spark, fragmented):
    cfg, ref = fragmented
    before = m.file_count(spark, ref)
    assert before >= 12
    done = m.maintain(spark, cfg, m.MaintainParams(retain_hours=0), force=True)
    assert [d["table"] for d in done] == ["rejects"]  # only tables that exist
    assert done[0]["files_before"] == before
    assert m.file_count(spark, ref) == done[0]["files_after"] < before
    # VACUUM with retention 0 removed the compacted-away files from storage, not only the log.
    assert parquet_files(ref) == m.file_count(spark, ref)
    assert tables.read(spark, ref).count() == 60
    # The retention check is back on after the forced call.
    assert spark.conf.get(m.RETENTION_CHECK, "true") != "false"


def test_short_retention_is_refused_without_force(spark, fragmented):
    cfg, ref = fragmented
    files = parquet_files(ref)
    with pytest.raises(WebscaleError, match="below Delta's safety default"):
        m.maintain(spark, cfg, m.MaintainParams(retain_hours=1))
    assert parquet_files(ref) == files  # nothing touched
    with pytest.raises(WebscaleError, match="--force"):
        m.vacuum(spark, ref, 0)


def test_default_retention_keeps_recent_files(spark, fragmented):
    cfg, ref = fragmented
    m.maintain(spark, cfg, m.MaintainParams())
    # Files replaced by OPTIMIZE are younger than 7 days: VACUUM keeps them for time travel.
    assert parquet_files(ref) > m.file_count(spark, ref)
    assert tables.read(spark, ref, version=0).count() == 5


def test_cli_refuses_short_retention(tmp_path, capsys):
    rc = main(["--lakehouse", str(tmp_path / "lh"), "maintain", "--retain-hours", "2"])
    assert rc == 1
    assert "--force" in capsys.readouterr().err
    assert not Path(tmp_path / "lh").exists()


def test_unknown_table_name(spark, make_cfg):
    with pytest.raises(WebscaleError, match="unknown table"):
        m.existing_tables(spark, make_cfg(), ["nope"])


def test_stale_staging_tables_are_deleted_and_fresh_ones_kept(spark, make_cfg, tmp_path):
    """A SIGKILL between staging and merging leaves `_staging/<stage>/<uuid>` behind."""
    cfg = make_cfg()
    stale = tables.staging_ref(cfg, "generate")
    fresh = tables.staging_ref(cfg, "generate")
    for ref in (stale, fresh):
        spark.range(3).write.format("delta").save(ref)
    old = 48 * 3600
    for root, dirs, files in os.walk(stale):
        for name in dirs + files:
            path = os.path.join(root, name)
            os.utime(path, (os.path.getatime(path) - old, os.path.getmtime(path) - old))
    os.utime(stale, (os.path.getatime(stale) - old, os.path.getmtime(stale) - old))

    assert m.stale_staging(spark, cfg, 24) == [f"file:{stale}"]
    done = m.maintain(spark, cfg, m.MaintainParams(staging_hours=24))
    assert done[-1]["table"] == "_staging" and len(done[-1]["removed"]) == 1
    assert not os.path.exists(stale)
    assert spark.read.format("delta").load(fresh).count() == 3
    # Nothing stale is left: a second pass removes nothing.
    assert m.stale_staging(spark, cfg, 24) == []


def test_cli_refuses_a_staging_age_below_one_hour(tmp_path, capsys):
    rc = main(["--lakehouse", str(tmp_path / "lh"), "maintain", "--staging-hours", "0.5"])
    assert rc == 1
    assert "--staging-hours must be at least 1" in capsys.readouterr().err


def test_maintain_prunes_old_llm_journal_files(spark, make_cfg, tmp_path):
    from webscale_rl.udfs.llm.interface import LLMResponse
    from webscale_rl.udfs.llm.journal import ResponseJournal

    cfg = make_cfg(f"llm.journal_dir={tmp_path / 'journal'}")
    ResponseJournal(tmp_path / "journal").put_many([LLMResponse(request_id="r", text="{}")])
    (old_file,) = (tmp_path / "journal").glob("*.jsonl")
    ten_days = old_file.stat().st_mtime - 240 * 3600
    os.utime(old_file, (ten_days, ten_days))
    done = m.maintain(spark, cfg, m.MaintainParams(journal_hours=168))
    assert done[-1] == {"table": "_llm_journal", "ref": str(tmp_path / "journal"), "pruned": 1}
    assert not old_file.exists()
