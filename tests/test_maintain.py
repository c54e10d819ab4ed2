import os
import re
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


# --- side tables: _decontam_index, _dedup_signatures/<table>_<digest>, _ingested_inputs ---


def tiny_benchmark(root: Path) -> list[str]:
    """Config overrides pointing decontamination at one two-item benchmark file under root."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "tiny.jsonl").write_text(
        '{"q": "what is the boiling point of water at sea level in degrees celsius"}\n'
        '{"q": "name the largest planet of the solar system and its number of moons"}\n'
    )
    return [
        f"decontam.data_root={root}",
        "decontam.benchmarks=[{name: tiny, path: tiny.jsonl, fields: [q]}]",
    ]


def stored_fingerprints(spark, cfg) -> list[str]:
    from webscale_rl.udfs.decontam import index_cache

    rows = tables.read(spark, index_cache.table_ref(cfg)).select("fingerprint").distinct()
    return sorted(r[0] for r in rows.collect())


def test_decontam_index_is_kept_whole_when_the_fingerprint_is_unknown(
    spark, make_cfg, tmp_path, capsys
):
    from webscale_rl.udfs.decontam import index_cache

    cfg = make_cfg()
    for key in ("a" * 32, "b" * 32):
        index_cache.store(spark, cfg, key, {"index": key})
    nowhere = tmp_path / "no_benchmarks"
    sets = ["--set", f"decontam.data_root={nowhere}"]
    rc = main(["--lakehouse", cfg.lakehouse, *sets, "maintain", "--no-optimize", "--no-vacuum"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "_decontam_index  kept every index: the current fingerprint is unknown" in out
    assert f"benchmark files missing under {nowhere}" in out
    assert stored_fingerprints(spark, cfg) == ["a" * 32, "b" * 32]


def signature_tables(spark, cfg):
    """The current documents signature table (3 small files) and one of another seed."""
    from webscale_rl.jobs import dedup

    params = dedup.params_of(cfg, dedup.DOCUMENTS)
    current = dedup.signatures_ref(cfg, dedup.DOCUMENTS, params)
    other = params.model_copy(update={"seed": params.seed + 1})
    stale = dedup.signatures_ref(cfg, dedup.DOCUMENTS, other)
    assert stale != current
    for ref, appends in ((current, 3), (stale, 1)):
        for i in range(appends):
            rows = spark.createDataFrame([(f"d{i}", -1, i)], dedup.SIGNATURES)
            rows.coalesce(1).write.format("delta").mode("append").save(ref)
    return current, stale


def test_no_prune_side_tables_keeps_other_settings_side_tables(spark, make_cfg, tmp_path, capsys):
    from webscale_rl.udfs.decontam import index_cache

    # Without the flag both would go (the fingerprint of the tiny benchmark is computable).
    overrides = tiny_benchmark(tmp_path / "bench")
    cfg = make_cfg(*overrides)
    _, stale = signature_tables(spark, cfg)
    index_cache.store(spark, cfg, "0" * 32, {"an": "older index"})
    sets = [x for o in overrides for x in ("--set", o)]
    # No OPTIMIZE/VACUUM either: only whether something is deleted is under test.
    flags = ["--no-prune-side-tables", "--no-optimize", "--no-vacuum"]
    rc = main(["--lakehouse", cfg.lakehouse, *sets, "maintain", *flags])
    assert rc == 0
    assert tables.read(spark, stale).count() == 1
    assert stored_fingerprints(spark, cfg) == ["0" * 32]
    assert "deleted" not in capsys.readouterr().out


def test_side_tables_are_pruned_compacted_and_vacuumed(spark, make_cfg, tmp_path, capsys):
    """One maintain run (the CLI) over every side table: stale decontamination indexes and
    signature tables deleted, the current ones kept; `_ingested_inputs`, `_progress` and the
    current signature table compacted and vacuumed."""
    from webscale_rl import increments
    from webscale_rl.jobs import decontaminate
    from webscale_rl.udfs.decontam import index_cache
    from webscale_rl.udfs.read import ingested_inputs

    overrides = tiny_benchmark(tmp_path / "bench")
    cfg = make_cfg(*overrides)
    params = cfg.decontam
    # The index a decontaminate run stores, under the key the job computes, and an older one.
    decontaminate.load_or_build_index(spark, cfg, params.benchmarks, params, params.data_root)
    (current_index,) = stored_fingerprints(spark, cfg)
    index_cache.store(spark, cfg, "0" * 32, {"an": "older index"})
    current, stale = signature_tables(spark, cfg)
    source = increments.StageInput(ref="/in/table", version=0, full=None)
    for i in range(3):  # one tiny commit per ingest run, per stage run
        ingested_inputs.record(spark, cfg, "jsonl", {f"/in/{i}.jsonl": "size=1;mtime=1"})
        source.version = i
        increments.record_finished(spark, cfg, "filter", source)

    sets = [x for o in overrides for x in ("--set", o)]
    rc = main(["--lakehouse", cfg.lakehouse, *sets, "maintain", "--retain-hours", "0", "--force"])
    assert rc == 0
    out = capsys.readouterr().out

    # _decontam_index: the older index deleted (its rows and bytes said), the current one kept
    ref = index_cache.table_ref(cfg)
    line = re.search(
        r"_decontam_index +deleted 1 stale index\(es\) \(1 rows, (?!0 B)[^)]+\): 0{32}", out
    )
    assert line, out
    assert stored_fingerprints(spark, cfg) == [current_index]
    assert index_cache.load(spark, cfg, current_index) is not None
    # Vacuumed: the deleted index's file is gone from storage.
    assert re.search(r"_decontam_index +files +\d+ -> +1", out), out
    assert parquet_files(ref) == m.file_count(spark, ref) == 1

    # _dedup_signatures: the other seed's table deleted, the current one compacted
    assert not os.path.exists(stale)
    assert tables.read(spark, current).count() == 3
    assert parquet_files(current) == m.file_count(spark, current) == 1  # OPTIMIZE + VACUUM
    deleted = rf"_dedup_signatures deleted 1 stale table\(s\) \(\d+\.\d kB\): {Path(stale).name}"
    assert re.search(deleted, out), out
    assert f"_dedup_signatures/{os.path.basename(current)} files      3 ->      1" in out

    # _ingested_inputs and _progress: compacted and vacuumed, rows kept
    for name, ref in [
        ("_ingested_inputs", ingested_inputs.table_ref(cfg)),
        ("_progress", increments.progress_ref(cfg)),
    ]:
        assert re.search(rf"{name} +files +3 -> +1", out), out
        assert parquet_files(ref) == 1
        assert tables.read(spark, ref).count() == 3
